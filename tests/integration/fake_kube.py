"""A fake Kubernetes API server for pods, speaking the real wire protocol to the real client.

list: `kind: PodList` with `metadata.resourceVersion` (items without kind/apiVersion, as the
API server sends them). watch (`watch=1|true`): HTTP/1.1 chunked stream of newline-delimited
`{"type", "object"}` events from `resourceVersion` (none or "0": synthetic ADDED for every pod
first), BOOKMARKs when asked and allowed, and for a compacted resourceVersion the API server's
answer: 200 with one ERROR event carrying a Status of code 410 (reason Expired), then the end.
Filters: namespace path, labelSelector (k=v, k!=v, k), fieldSelector (spec.nodeName,
metadata.namespace, metadata.name). Tests mutate pods, drop connections (between events or in
the middle of one), expire watches, refuse requests, answer 410 to lists, and read the query
strings received and the counters in `stats`.
A compaction also ends an open watch that has not yet been sent every event it forgets, with
the 410 ERROR event (as etcd's "required revision has been compacted" does): it never skips one.
"""
from __future__ import annotations

import bisect
import collections
import copy
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Pod = dict[str, Any]


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]

    @property
    def watch(self) -> bool:
        return self.query.get("watch") in ("1", "true")


def _selector_matches(selector: str, values: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if values.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if values.get(key.strip()) != value.strip():
                return False
        elif term.strip() not in values:
            return False
    return True


def _fields(pod: Pod) -> dict[str, str]:
    meta = pod["metadata"]
    return {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
            "spec.nodeName": pod.get("spec", {}).get("nodeName", ""), "status.phase": pod.get("status", {}).get("phase", "")}


def status_object(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class FakeKubeApi:
    """Pods, their history of changes by resourceVersion, and the open watch connections."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], Pod] = {}
        self.history: list[tuple[int, str, Pod, bytes]] = []  # (resourceVersion, type, object, event line)
        self.resource_version = 1000
        self.compacted = 0          # watches from a resourceVersion below this get 410
        self.requests: list[Request] = []
        self.refusing = 0           # answer this HTTP status to every request while set
        self.generation = 0         # bumped by drop(): open watches end abruptly
        self.end_after_backlog = False  # benchmarks: end each watch once its backlog is sent
        self.gone_lists = 0         # answer this many next lists HTTP 410 Gone (an expired list)
        self.gone_http = False      # a watch from a compacted resourceVersion: HTTP 410, not an ERROR event
        self.last_change: dict[str, int] = {}  # namespace -> resourceVersion of its last change
        self.stats: collections.Counter[str] = collections.Counter()  # what the server did, by kind
        self.peak_watches = 0       # most watch connections open at once
        self.cache: tuple[int, dict[tuple[str, str], Pod]] | None = None  # a lagging watch cache, see lag_cache()
        self.cond = threading.Condition()
        self._bookmarks: list[int] = []  # resourceVersions at which a BOOKMARK was asked
        self._sockets: set[socket.socket] = set()
        self._cut: set[socket.socket] = set()  # watches to end in the middle of their next event
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-kube", daemon=True)

    # -- server ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeKubeApi":
        self._thread.start()
        return self

    def close(self) -> None:
        self.drop()
        self.server.shutdown()
        self.server.server_close()

    def configuration(self) -> Any:
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return configuration

    # -- mutations ---------------------------------------------------------------------------
    def _record(self, kind: str, pod: Pod) -> Pod:
        with self.cond:
            self.resource_version += 1
            pod = copy.deepcopy(pod)
            pod["metadata"]["resourceVersion"] = str(self.resource_version)
            meta = pod["metadata"]
            if kind == "DELETED":
                self.pods.pop((meta["namespace"], meta["name"]), None)
            else:
                self.pods[(meta["namespace"], meta["name"])] = pod
            line = json.dumps({"type": kind, "object": pod}).encode() + b"\n"
            self.history.append((self.resource_version, kind, pod, line))
            self.last_change[meta["namespace"]] = self.resource_version
            self.cond.notify_all()
            return pod

    def add(self, pod: Pod) -> Pod:
        return self._record("ADDED", pod)

    def modify(self, pod: Pod) -> Pod:
        return self._record("MODIFIED", pod)

    def put(self, pod: Pod) -> Pod:
        meta = pod["metadata"]
        return self.modify(pod) if (meta["namespace"], meta["name"]) in self.pods else self.add(pod)

    def delete(self, namespace: str, name: str) -> Pod:
        return self._record("DELETED", self.pods[(namespace, name)])

    def bookmark(self) -> int:
        """Ask open watches (that allow bookmarks) to send a BOOKMARK at a new resourceVersion."""
        with self.cond:
            self.resource_version += 1
            self._bookmarks.append(self.resource_version)
            self.cond.notify_all()
            return self.resource_version

    def compact(self) -> None:
        """Forget history up to now: watches from an older resourceVersion get 410 Gone (open
        ones too, if they have not been sent every event forgotten)."""
        with self.cond:
            self.compacted = self.resource_version
            self.history.clear()
            self.stats["compactions"] += 1
            self.cond.notify_all()

    def expire(self) -> None:
        """End every open watch with the 410 ERROR event (the watch cache lost their window):
        a compaction one resourceVersion ahead of all of them. A relist then gets the new one."""
        with self.cond:
            self.resource_version += 1
            self.stats["expiries"] += 1
        self.compact()

    def drop(self) -> None:
        """Cut every open connection mid-stream, as a restarting API server or LB does."""
        with self.cond:
            self.generation += 1
            sockets, self._sockets = list(self._sockets), set()
            self.stats["drops"] += 1
            self.cond.notify_all()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """End every open watch in the middle of the next event it is sent: half a line, then
        the connection closes (no terminating chunk)."""
        with self.cond:
            self._cut |= self._sockets
            self.stats["cuts"] += 1

    def lag_cache(self) -> None:
        """From now on a list with resourceVersion "0" is answered from the pods as they are now,
        as by an API server whose watch cache lags behind etcd."""
        with self.cond:
            self.cache = (self.resource_version, copy.deepcopy(self.pods))

    def since(self, version: int, namespace: str, query: dict[str, str]) -> list[bytes]:
        """Event lines after `version` that match the watch (call with `cond` held)."""
        start = bisect.bisect_right(self.history, version, key=lambda entry: entry[0])
        return [line for _, _, obj, line in self.history[start:] if self._matches(obj, namespace, query)]

    def watches(self) -> list[Request]:
        return [r for r in self.requests if r.watch]

    # -- reads -------------------------------------------------------------------------------
    def _matches(self, pod: Pod, namespace: str, query: dict[str, str]) -> bool:
        meta = pod["metadata"]
        if namespace and meta["namespace"] != namespace:
            return False
        return (_selector_matches(query.get("labelSelector", ""), meta.get("labels") or {})
                and _selector_matches(query.get("fieldSelector", ""), _fields(pod)))

    def list_body(self, namespace: str, query: dict[str, str]) -> bytes:
        """The pods now; for resourceVersion "0" ("any"), the lagging cache's if there is one. A
        list at a given version gets the latest, which is never older than that version."""
        with self.cond:
            version, pods = self.resource_version, self.pods
            if query.get("resourceVersion") == "0" and self.cache is not None:
                version, pods = self.cache
            items = [p for p in pods.values() if self._matches(p, namespace, query)]
            return json.dumps({"kind": "PodList", "apiVersion": "v1",
                               "metadata": {"resourceVersion": str(version)},
                               "items": items}).encode()


def _handler(api: FakeKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            api.requests.append(Request(url.path, query))
            parts = url.path.strip("/").split("/")
            if api.refusing:
                return self._status(api.refusing, "ServiceUnavailable", "the fake API server is refusing requests")
            watch = query.get("watch") in ("1", "true")
            with api.cond:
                api.stats["watches" if watch else "lists"] += 1
                gone_list = not watch and api.gone_lists > 0
                if gone_list:
                    api.gone_lists -= 1
                    api.stats["gone_lists"] += 1
            if gone_list:
                return self._status(410, "Expired", "The provided continue parameter is too old")
            if parts == ["api", "v1", "pods"]:
                namespace = ""
            elif len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
                namespace = parts[3]
            else:
                return self._status(404, "NotFound", f"the server could not find the requested resource ({url.path})")
            if watch:
                return self._watch(namespace, query)
            body = api.list_body(namespace, query)
            self._send(200, body)

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _status(self, code: int, reason: str, message: str) -> None:
            self._send(code, json.dumps(status_object(code, reason, message)).encode())

        def _chunks(self, lines: list[bytes]) -> None:
            """Write event lines as chunks, several per write (the API server flushes per event;
            the client cannot tell, and benchmarks need the server to keep up)."""
            if lines and self.connection in api._cut:  # cut(): half of the first event, then the end
                with api.cond:
                    api._cut.discard(self.connection)
                    api.stats["cut_mid_event"] += 1
                self.wfile.write(b"%x\r\n%s" % (len(lines[0]), lines[0][:len(lines[0]) // 2]))
                raise ConnectionAbortedError("cut in the middle of an event")
            batch: list[bytes] = []
            size = 0
            for line in lines:
                batch.append(b"%x\r\n%s\r\n" % (len(line), line))
                size += len(line)
                if size > 65536:
                    self.wfile.write(b"".join(batch))
                    batch, size = [], 0
            if batch:
                self.wfile.write(b"".join(batch))

        def _watch(self, namespace: str, query: dict[str, str]) -> None:
            version = int(query.get("resourceVersion") or 0)
            bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
            deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
            if api.gone_http and version and version < api.compacted:
                with api.cond:
                    api.stats["gone_http"] += 1
                return self._status(410, "Expired", f"too old resource version: {version} ({api.compacted})")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with api.cond:
                generation = api.generation
                api._sockets.add(self.connection)
                api.peak_watches = max(api.peak_watches, len(api._sockets))
                gone = bool(version) and version < api.compacted
                if gone:
                    backlog = [_gone(version, api.compacted)]
                    api.stats["gone_events"] += 1
                elif not version:  # "0"/absent: the current state as ADDED, then changes
                    backlog = [json.dumps({"type": "ADDED", "object": p}).encode() + b"\n"
                               for p in api.pods.values() if api._matches(p, namespace, query)]
                else:
                    backlog = api.since(version, namespace, query)
                    if bookmarks and api._bookmarks and api._bookmarks[-1] > version:
                        backlog.append(_bookmark(api.resource_version))  # asked after its version: owed one too
                version = max(version, api.resource_version)
            lines: list[bytes] = []
            try:
                self._chunks(backlog)
                while not gone and not api.end_after_backlog and time.monotonic() < deadline:
                    with api.cond:
                        if api.generation != generation:
                            return  # dropped: no terminating chunk, the client sees a broken stream
                        if version < api.compacted:  # events this watch was not sent are forgotten
                            gone, lines, marks = True, [_gone(version, api.compacted)], []
                            api.stats["gone_events"] += 1
                            break
                        lines = api.since(version, namespace, query)
                        marks = [rv for rv in api._bookmarks if rv > version] if bookmarks else []
                        if api.resource_version == version:
                            api.cond.wait(0.2)
                            continue
                        version = api.resource_version
                    if marks:
                        lines.append(_bookmark(max(marks)))
                    self._chunks(lines)
                if gone and lines:  # expired while open: the ERROR event, then the end
                    self._chunks(lines)
                self.wfile.write(b"0\r\n\r\n")  # timeoutSeconds reached or expired: a clean end
            except OSError:
                pass
            finally:
                with api.cond:
                    api._sockets.discard(self.connection)
                    api._cut.discard(self.connection)
                self.close_connection = True

    return Handler


def _bookmark(version: int) -> bytes:
    return json.dumps({"type": "BOOKMARK", "object": {
        "kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(version)}}}).encode() + b"\n"


def _gone(version: int, compacted: int) -> bytes:
    return json.dumps({"type": "ERROR", "object": status_object(
        410, "Expired", f"too old resource version: {version} ({compacted})")}).encode() + b"\n"


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pods"


def load_pod(fixture: str, *, name: str | None = None, namespace: str | None = None, node: str | None = None,
             labels: dict[str, str] | None = None) -> Pod:
    """A kubelet-shaped pod from tests/fixtures/pods/<fixture>.json, optionally renamed/moved."""
    pod: Pod = json.loads((FIXTURES / f"{fixture}.json").read_text())
    meta = pod["metadata"]
    if name is not None:
        meta["name"] = name
    if namespace is not None:
        meta["namespace"] = namespace
    if node is not None:
        pod["spec"]["nodeName"] = node
    if labels is not None:
        meta["labels"] = labels
    return pod
