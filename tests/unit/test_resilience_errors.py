"""The classifier against real exception instances from requests, urllib3, docker, kubernetes, stdlib."""
from __future__ import annotations

import asyncio
import json
import pickle
import socket
import subprocess
import sys

import docker.errors
import kubernetes.client.exceptions as kube_errors
import pytest
import requests
import urllib3.exceptions

from exporter.resilience import CircuitOpenError, ErrorCode, ResilienceError, classify


def response(status: int, url: str = "http://unix/v1.47/containers/json") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.url = url
    r.reason = "reason"
    return r


def http_error(status: int) -> requests.HTTPError:
    return requests.HTTPError(f"{status} error", response=response(status))


def json_error() -> json.JSONDecodeError:
    try:
        json.loads("{not json")
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError


POOL = urllib3.HTTPConnectionPool("localhost", 1)

CASES = [
    # requests
    (requests.ConnectionError("refused"), ErrorCode.NETWORK_ERROR),
    (requests.Timeout("slow"), ErrorCode.TIMEOUT),
    (requests.ConnectTimeout("connect slow"), ErrorCode.TIMEOUT),  # is also a ConnectionError
    (requests.ReadTimeout("read slow"), ErrorCode.TIMEOUT),
    (http_error(401), ErrorCode.PERMISSION_DENIED),
    (http_error(403), ErrorCode.PERMISSION_DENIED),
    (http_error(503), ErrorCode.NETWORK_ERROR),
    (http_error(429), ErrorCode.NETWORK_ERROR),
    (http_error(404), ErrorCode.INVALID_RESPONSE),
    (requests.HTTPError("no response attached"), ErrorCode.INVALID_RESPONSE),
    (requests.exceptions.JSONDecodeError("bad", "{", 0), ErrorCode.INVALID_RESPONSE),
    # urllib3
    (urllib3.exceptions.NewConnectionError(None, "refused"), ErrorCode.NETWORK_ERROR),
    (urllib3.exceptions.ConnectTimeoutError("connect timed out"), ErrorCode.TIMEOUT),
    (urllib3.exceptions.ReadTimeoutError(POOL, "/", "read timed out"), ErrorCode.TIMEOUT),
    (urllib3.exceptions.MaxRetryError(POOL, "/", None), ErrorCode.NETWORK_ERROR),
    (urllib3.exceptions.ProtocolError("Connection aborted."), ErrorCode.NETWORK_ERROR),
    # docker
    (docker.errors.APIError("denied", response=response(403)), ErrorCode.PERMISSION_DENIED),
    (docker.errors.APIError("daemon broke", response=response(500)), ErrorCode.NETWORK_ERROR),
    (docker.errors.APIError("conflict", response=response(409)), ErrorCode.DOCKER_ERROR),
    (docker.errors.APIError("no response"), ErrorCode.DOCKER_ERROR),
    (docker.errors.NotFound("no such container", response=response(404)), ErrorCode.DOCKER_ERROR),
    (docker.errors.ImageNotFound("no such image", response=response(404)), ErrorCode.DOCKER_ERROR),
    (docker.errors.BuildError("failed", build_log=[]), ErrorCode.DOCKER_ERROR),
    (docker.errors.DockerException(
        "Error while fetching server API version: ('Connection aborted.', "
        "FileNotFoundError(2, 'No such file or directory'))"), ErrorCode.AGENT_NOT_CONNECTED),
    # kubernetes
    (kube_errors.ApiException(status=410, reason="Gone"), ErrorCode.INVALID_RESPONSE),
    (kube_errors.ApiException(status=403, reason="Forbidden"), ErrorCode.PERMISSION_DENIED),
    (kube_errors.ApiException(status=0, reason="no response"), ErrorCode.NETWORK_ERROR),
    (kube_errors.ApiException(), ErrorCode.NETWORK_ERROR),
    (kube_errors.ApiException(status=504), ErrorCode.NETWORK_ERROR),
    # stdlib
    (ConnectionRefusedError(111, "refused"), ErrorCode.NETWORK_ERROR),
    (ConnectionResetError(104, "reset"), ErrorCode.NETWORK_ERROR),
    (BrokenPipeError(32, "pipe"), ErrorCode.NETWORK_ERROR),
    (socket.gaierror(-2, "Name or service not known"), ErrorCode.NETWORK_ERROR),
    (PermissionError(13, "denied", "/var/run/docker.sock"), ErrorCode.PERMISSION_DENIED),
    (FileNotFoundError(2, "missing", "/var/run/docker.sock"), ErrorCode.AGENT_NOT_CONNECTED),
    (FileNotFoundError(2, "missing", "/etc/config.yaml"), ErrorCode.UNKNOWN_ERROR),
    (TimeoutError("slow"), ErrorCode.TIMEOUT),
    (asyncio.TimeoutError(), ErrorCode.TIMEOUT),
    (socket.timeout("slow"), ErrorCode.TIMEOUT),
    (subprocess.TimeoutExpired(["docker", "ps"], 5), ErrorCode.TIMEOUT),
    (json_error(), ErrorCode.INVALID_RESPONSE),
    (ValueError("surprise"), ErrorCode.UNKNOWN_ERROR),
    (RuntimeError("surprise"), ErrorCode.UNKNOWN_ERROR),
    # our own
    (CircuitOpenError("docker", 3.0), ErrorCode.CIRCUIT_OPEN),
    (ResilienceError("agent said no", ErrorCode.AGENT_ERROR), ErrorCode.AGENT_ERROR),
]


@pytest.mark.parametrize("exc, expected", CASES, ids=lambda v: type(v).__qualname__ if isinstance(v, BaseException) else v.value)
def test_classify_maps_real_exceptions_to_error_codes(exc: BaseException, expected: ErrorCode) -> None:
    assert classify(exc) is expected


def test_error_code_attribute_wins_over_the_exception_type() -> None:
    class AgentGone(ConnectionError):
        error_code = ErrorCode.AGENT_DISCONNECTED

    assert classify(AgentGone()) is ErrorCode.AGENT_DISCONNECTED


def test_integer_code_attributes_are_not_mistaken_for_error_codes() -> None:
    exc = RuntimeError("exit")
    exc.code = 2  # type: ignore[attr-defined]
    assert classify(exc) is ErrorCode.UNKNOWN_ERROR


def test_unknown_wrapper_is_classified_by_its_explicit_cause() -> None:
    try:
        try:
            raise requests.ConnectTimeout("slow")
        except requests.ConnectTimeout as inner:
            raise RuntimeError("fetch failed") from inner
    except RuntimeError as outer:
        assert classify(outer) is ErrorCode.TIMEOUT


def test_retryable_and_cautious_vocabulary() -> None:
    retryable = {c for c in ErrorCode if c.retryable}
    assert retryable == {ErrorCode.NETWORK_ERROR, ErrorCode.AGENT_DISCONNECTED, ErrorCode.AGENT_NOT_CONNECTED,
                         ErrorCode.TIMEOUT, ErrorCode.UNKNOWN_ERROR}
    assert [c for c in ErrorCode if c.cautious] == [ErrorCode.UNKNOWN_ERROR]
    assert all(c.value == c.name for c in ErrorCode)
    assert len(ErrorCode) == 10


def test_circuit_open_error_names_the_breaker_and_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(CircuitOpenError("kube-api", 12.5)))
    assert (err.name, err.retry_after, err.code) == ("kube-api", 12.5, ErrorCode.CIRCUIT_OPEN)
    assert "kube-api" in str(err)


def test_library_imports_without_requests_docker_or_kubernetes() -> None:
    # A child interpreter in which those packages cannot be imported at all.
    code = (
        "import sys\n"
        "BLOCKED = {'requests', 'docker', 'kubernetes', 'urllib3'}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import exporter.resilience as r\n"
        "assert r.classify(ConnectionRefusedError()) is r.ErrorCode.NETWORK_ERROR\n"
        "assert not BLOCKED & set(sys.modules)\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_registry_port_containing_401_is_not_an_auth_failure() -> None:
    from exporter.sources.docker.pullguard import PullError, classify_pull_error

    assert classify_pull_error('Head "http://127.0.0.1:54013/v2/app/manifests/nope": manifest unknown') \
        is PullError.MANIFEST_UNKNOWN
    assert classify_pull_error("received unexpected HTTP status: 401 Unauthorized") is PullError.AUTH
    assert classify_pull_error("pull failed: status 403") is PullError.AUTH
