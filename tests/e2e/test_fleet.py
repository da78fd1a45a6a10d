"""The fleet, end to end on this machine: 20 device stacks (each its own exporter process with its
own --host, its own role agent and Kubernetes node, its own vmagent pushing through its own link)
into one central VictoriaMetrics; vmalert evaluates the alert pack rendered from
deploy/fleet/central/alertpack.yaml (only device_offline_after shortened, in the site file);
Alertmanager with that render's config and Slack template posts to a local Slack receiver (only
group_wait/group_interval shortened)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import yaml

from tests.harness import require_binary, wait_until
from tests.integration.engines_monitoring import Alertmanager, SlackMessage, SlackReceiver, temp_root
from tests.integration.fake_kube import FakeKubeApi, load_pod
from tests.integration.fleet import FLEET, ROOT, Device, VictoriaMetrics, VMAlert, kubeconfig, rss_bytes
from tests.integration.test_grafana_dashboards import queries_without_data

DEVICES = 20
IMAGE_HOSTS = [f"device-{i:02d}" for i in range(10)]  # the same terminal image error
AGENT_HOST = "device-12"                               # its role agent starts failing
OFFLINE_HOST = "device-05"                             # its link goes down (it has an image alert too)
BREAKER_HOST = "device-17"                             # a probe of a dead port: an open breaker
OFFLINE_AFTER = 20                                     # seconds, device_offline_after in the site file
SCRAPE_INTERVAL = 2                                    # seconds, each vmagent
IMAGE = "registry.example.com/shop/web:local-build"   # tests/fixtures/pods/err-image-never-pull.json


class Fleet:
    def __init__(self) -> None:
        for name in ("victoria-metrics", "vmagent", "vmalert", "prometheus-alertmanager"):
            require_binary(name)
        self.root = temp_root("re-fleet-")
        self.devices: list[Device] = []
        self.parts: list[Any] = []  # central engines, closed in reverse
        self.kube = FakeKubeApi().start()
        self.slack = SlackReceiver()
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self.hosts = [f"device-{i:02d}" for i in range(DEVICES)]
        for host in self.hosts:
            self.kube.add(load_pod("running", name=f"web-{host}", node=host))
        site = yaml.safe_load((FLEET / "central" / "alertpack.yaml").read_text())
        site["device_offline_after"] = f"{OFFLINE_AFTER}s"
        (self.root / "alertpack.yaml").write_text(yaml.safe_dump(site))
        self.pack = self.root / "pack"
        out = subprocess.run([sys.executable, "-m", "exporter", "alerts", "render", "--config",
                              str(self.root / "alertpack.yaml"), "--out", str(self.pack)],
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        self.store = VictoriaMetrics(self.root, staleness="3m")
        self.parts.append(self.store)
        # group_wait spans one evaluation of the container group (10 s) and the vmagents' pushes.
        self.alertmanager = Alertmanager(self.root, slack_url=self.slack.url, alerts=self.pack,
                                         timings={"group_wait": "15s", "group_interval": "20s",
                                                  "repeat_interval": "1h"})
        self.parts.append(self.alertmanager)
        self.vmalert = VMAlert(self.root, rules=sorted(self.pack.glob("*.rules.yml")), store=self.store.url,
                               alertmanager=self.alertmanager.url)
        self.parts.append(self.vmalert)
        config = kubeconfig(self.root / "kubeconfig", self.kube.url)
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(self._device, h, config) for h in self.hosts]
        self.devices = [f.result() for f in futures if f.exception() is None]
        for f in futures:
            if f.exception() is not None:
                raise f.exception()  # type: ignore[misc]
        self.by_host = {d.host: d for d in self.devices}

    def _device(self, host: str, config: Path) -> Device:
        root = self.root / host
        root.mkdir()
        agent = root / "agent.sh"
        agent.write_text(f"#!/bin/sh\n[ -e {root / 'fail'} ] && {{ echo 'compose failed' >&2; exit 3; }}\nexit 0\n")
        agent.chmod(0o755)
        probes = [{"name": "dead", "url": "http://127.0.0.1:9/", "interval": "1s", "timeout": "1s", "attempts": 1}]
        return Device(root, host, store=("127.0.0.1", self.store.port), scrape_interval=f"{SCRAPE_INTERVAL}s",
                      exporter_config={
                          "docker": {"enabled": "false"},
                          "kubernetes": {"enabled": True, "kubeconfig": str(config), "node": host},
                          "agent": {"command": [str(agent)], "name": "edge", "every": "2s",
                                    "transient_failures": [], "breaker_failure_threshold": 1000},
                          "probes": probes if host == BREAKER_HOST else [],
                          "log": {"level": "warn"}})

    def close(self) -> None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(Device.close, self.devices))
        for part in reversed(self.parts):
            part.close()
        self.slack.close()
        self.kube.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def messages(self, reason: str, status: str = "firing") -> list[SlackMessage]:
        prefix = "[FIRING:" if status == "firing" else "[RESOLVED]"
        return [m for m in list(self.slack.messages) if m.title.startswith(prefix) and f"] {reason} " in m.title]

    def message(self, reason: str, status: str = "firing", timeout: float = 120) -> SlackMessage:
        try:
            return wait_until(lambda: (self.messages(reason, status) or [None])[0], timeout=timeout, interval=0.5,
                              message=f"a {status} Slack message for {reason}")
        except AssertionError as exc:
            raise AssertionError(f"{exc} (got: {[m.title for m in self.slack.messages]}; vmalert: "
                                 f"{[(a['name'], a['labels'].get('host')) for a in self.vmalert.alerts()]})") from None

    def am_alerts(self, alertname: str) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.alertmanager.url}/api/v2/alerts", params={"filter": f'alertname="{alertname}"'},
                                 timeout=10).json())

    def am_groups(self, alertname: str) -> list[dict[str, Any]]:
        groups = requests.get(f"{self.alertmanager.url}/api/v2/alerts/groups", timeout=10).json()
        return [g for g in groups if g["labels"].get("alertname") == alertname]


def hosts_in(text: str) -> set[str]:
    return set(re.findall(r"device-\d\d", text))


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    f = Fleet()
    try:
        yield f
    finally:
        f.close()


def test_twenty_devices_push_to_the_central_store(fleet: Fleet) -> None:
    wait_until(lambda: len(fleet.store.query('group by (host) (role_agent_last_run_success{agent="edge"} == 1)'))
               == DEVICES, timeout=90, interval=1, message="every device's agent series in the central store")
    rss = {"exporter": [rss_bytes(d.exporter) for d in fleet.devices],  # type: ignore[arg-type]
           "vmagent": [rss_bytes(d.vmagent) for d in fleet.devices]}  # type: ignore[arg-type]
    print(f"\nRSS per device: exporter {sum(rss['exporter']) / DEVICES / 2**20:.0f} MiB, vmagent "
          f"{sum(rss['vmagent']) / DEVICES / 2**20:.0f} MiB; central VictoriaMetrics "
          f"{rss_bytes(fleet.store) / 2**20:.0f} MiB, vmalert {rss_bytes(fleet.vmalert) / 2**20:.0f} MiB")
    # A healthy fleet is quiet: at most the dead probe of BREAKER_HOST speaks.
    noise = [m.title for m in fleet.slack.messages if hosts_in(m.title + m.text) != {BREAKER_HOST}]
    assert not noise, noise


def test_the_same_image_error_on_ten_devices_is_one_message_naming_them(fleet: Fleet) -> None:
    for host in IMAGE_HOSTS:
        fleet.kube.put(load_pod("err-image-never-pull", name=f"web-{host}", node=host))
    msg = fleet.message("ErrImageNeverPull")
    assert msg.title == "[FIRING:10] ErrImageNeverPull app@10 hosts" and IMAGE in msg.text, msg.title
    assert hosts_in(msg.text) == set(IMAGE_HOSTS), msg.text
    # Alertmanager holds the ten in one group; one group interval later there is still one message.
    wait_until(lambda: [len(g["alerts"]) for g in fleet.am_groups("ResilienceContainerImageTerminal")] == [10],
               timeout=30, interval=0.5, message="one Alertmanager group of 10 alerts")
    sent = msg.received
    wait_until(lambda: time.time() > sent + 25, timeout=30, interval=0.5, message="a group interval (20s) to pass")
    assert len(fleet.messages("ErrImageNeverPull")) == 1, [m.title for m in fleet.slack.messages]


def test_one_device_whose_agent_fails_is_one_message_for_that_host(fleet: Fleet) -> None:
    (fleet.by_host[AGENT_HOST].root / "fail").write_text("")
    # Runs every 2 s: the streak alert (which inhibits ConvergeFailing on the host) is the one sent.
    msg = fleet.message("ConvergeFailedRepeatedly")
    assert hosts_in(msg.title + msg.text) == {AGENT_HOST}, msg.text
    agent_messages = fleet.messages("ConvergeFailedRepeatedly") + fleet.messages("ConvergeFailed")
    assert len(agent_messages) == 1, [m.title for m in agent_messages]


def test_a_device_whose_link_is_cut_is_offline_once_and_its_alerts_are_inhibited(fleet: Fleet) -> None:
    device = fleet.by_host[OFFLINE_HOST]
    before = len(fleet.slack.messages)
    fleet.cut_at = time.time()  # type: ignore[attr-defined]
    device.link.cut()
    msg = fleet.message("DeviceOffline", timeout=90)
    assert hosts_in(msg.title + msg.text) == {OFFLINE_HOST}, msg.text
    image_alert = wait_until(lambda: [a for a in fleet.am_alerts("ResilienceContainerImageTerminal")
                                      if a["labels"]["host"] == OFFLINE_HOST and a["status"]["inhibitedBy"]],
                             timeout=30, interval=0.5, message=f"{OFFLINE_HOST}'s image alert inhibited")
    assert image_alert[0]["status"]["state"] == "suppressed"
    others = [a for a in fleet.am_alerts("ResilienceContainerImageTerminal") if a["labels"]["host"] != OFFLINE_HOST]
    assert len(others) == 9 and not any(a["status"]["inhibitedBy"] for a in others)
    assert len(fleet.messages("DeviceOffline")) == 1
    new = [m.title for m in fleet.slack.messages[before:]
           if OFFLINE_HOST in m.title + m.text and "DeviceOffline" not in m.title]
    assert not new, new  # nothing else about the device while it is offline


def test_every_fleet_dashboard_query_returns_data_from_the_central_store(fleet: Fleet) -> None:
    """While the fleet shows all of it (10 image errors, a failing agent, an open breaker, a device offline)."""
    def gaps() -> list[str]:
        return queries_without_data(fleet.store.query, [ROOT / "grafana" / "dashboards" / "fleet.json"],
                                    zero_is_empty=True)

    deadline = time.monotonic() + 60
    while (bad := gaps()) and time.monotonic() < deadline:
        time.sleep(2)
    assert not bad, "\n".join(bad)


def test_when_the_link_returns_its_buffered_samples_arrive_and_the_alert_resolves(fleet: Fleet) -> None:
    device = fleet.by_host[OFFLINE_HOST]
    restored = time.time()
    device.link.restore()
    msg = fleet.message("DeviceOffline", status="resolved", timeout=150)
    assert hosts_in(msg.title + msg.text) == {OFFLINE_HOST}, msg.text
    cut = fleet.cut_at  # type: ignore[attr-defined]
    # Every scrape the device's vmagent made while cut off arrived: `up` (written by each scrape,
    # even one that fails) has no gap, and each successful scrape brought the agent's series.
    # (A scrape of the exporter may fail on a starved 2-core machine; that is not the link.)
    def samples(match: str) -> dict[float, float]:
        ((_, got),) = fleet.store.export(match, cut - 20, restored + 10)
        return got

    def worst_gap() -> tuple[float, float, dict[float, float]]:
        """(largest gap in `up`, where it starts relative to the cut, the samples)."""
        got = samples(f'up{{host="{OFFLINE_HOST}",job="resilience-exporter"}}')
        stamps = sorted(got)
        gaps = [(b - a, a - cut) for a, b in zip(stamps, stamps[1:])]
        assert stamps[0] < cut - 10, stamps[0] - cut
        return (*max(gaps, default=(0.0, 0.0)), got) if stamps[-1] > restored else (float("inf"), 0.0, got)

    # The block in flight when the link went down waits out vmagent's retry back-off (up to a
    # minute) while newer blocks already flow: the alert may resolve before the gap closes.
    last: list[tuple[float, float, dict[float, float]]] = []

    def closed() -> bool:
        last[:] = [worst_gap()]
        return last[0][0] <= 2 * SCRAPE_INTERVAL + 1

    resolved = time.monotonic()
    try:
        wait_until(closed, timeout=120, interval=2, message="the gap in up to close")
        print(f"\nno gap in up {time.monotonic() - resolved:.0f} s after the alert resolved "
              f"({restored - cut:.0f} s between cut and restore)")
    except AssertionError:
        gap, at, _ = last[0] if last else (float("nan"), 0.0, {})
        raise AssertionError(f"largest gap in up 120 s after the alert resolved: {gap:.1f}s, from {at:+.1f}s "
                             f"after the cut ({restored - cut:.1f}s between cut and restore)") from None
    up = last[0][2]
    agent = samples(f'role_agent_last_run_success{{host="{OFFLINE_HOST}"}}')
    scraped = {t for t, v in up.items() if v == 1}
    assert scraped <= set(agent), sorted(scraped - set(agent))
    assert len(scraped) >= 0.8 * len(up), f"{len(scraped)} of {len(up)} scrapes succeeded"
    assert len(fleet.messages("DeviceOffline")) == 1  # offline once
    assert len(fleet.messages("ErrImageNeverPull")) == 1  # its image alert never went out again
