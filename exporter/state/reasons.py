"""The closed vocabulary of container states, borrowed from the kubelet, with a remedy for each.

One enum serves both sources, so one alert and one dashboard cover Docker hosts and clusters.
Each reason knows whether it is healthy, transient (may heal by itself) or terminal (never heals
without a human), and carries the remedy sentence shown by the CLI, the page, the API and alerts.
"""
from __future__ import annotations

from enum import Enum


class Classification(str, Enum):
    OK = "ok"
    TRANSIENT = "transient"
    TERMINAL = "terminal"


class Reason(str, Enum):
    """Why a container is in the state it is; values are the kubelet's spelling."""

    def __new__(cls, value: str, classification: Classification, remedy: str) -> "Reason":
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.classification = classification
        obj.remedy = remedy
        # plain attributes, not properties: read on every engine event
        obj.is_failure = classification is not Classification.OK
        obj.is_terminal = classification is Classification.TERMINAL
        return obj

    classification: Classification
    remedy: str
    is_failure: bool
    is_terminal: bool

    # Healthy or neutral.
    RUNNING = ("Running", Classification.OK, "Nothing to do.")
    COMPLETED = ("Completed", Classification.OK, "Nothing to do: the container exited with code 0.")
    CREATED = ("Created", Classification.OK, "The container exists but was never started; start it or remove it.")
    PULLED = ("Pulled", Classification.OK, "Nothing to do: the desired image is on the host.")
    PAUSED = ("Paused", Classification.OK, "The container is paused; unpause it when it should run again.")
    CONTAINER_CREATING = ("ContainerCreating", Classification.TRANSIENT,
                          "Wait; if it persists, check volume mounts, secrets and the node's runtime events.")
    POD_INITIALIZING = ("PodInitializing", Classification.TRANSIENT,
                        "Wait for init containers; if it persists, check their logs.")
    # Image problems.
    ERR_IMAGE_PULL = ("ErrImagePull", Classification.TRANSIENT,
                      "Check the image name and tag exist in the registry and the registry is reachable.")
    IMAGE_PULL_BACK_OFF = ("ImagePullBackOff", Classification.TRANSIENT,
                           "Pulls keep failing and are being retried with back-off: fix the image reference, registry reachability or credentials.")
    ERR_IMAGE_NEVER_PULL = ("ErrImageNeverPull", Classification.TERMINAL,
                            "The pull policy is Never and the image is not on the host: load the image onto the host or change the pull policy.")
    INVALID_IMAGE_NAME = ("InvalidImageName", Classification.TERMINAL,
                          "The image reference is malformed: correct it in the deployment (repository[:tag][@digest]).")
    IMAGE_INSPECT_ERROR = ("ImageInspectError", Classification.TRANSIENT,
                           "The runtime could not inspect the image: check the runtime's image store and disk.")
    REGISTRY_UNAVAILABLE = ("RegistryUnavailable", Classification.TRANSIENT,
                            "The registry cannot be reached: check DNS, network and the registry's status.")
    # Create and start problems.
    CREATE_CONTAINER_CONFIG_ERROR = ("CreateContainerConfigError", Classification.TERMINAL,
                                     "A referenced ConfigMap, Secret or key is missing or invalid: create it or fix the reference.")
    CREATE_CONTAINER_ERROR = ("CreateContainerError", Classification.TRANSIENT,
                              "The runtime failed to create the container: check its events and the container spec.")
    RUN_CONTAINER_ERROR = ("RunContainerError", Classification.TRANSIENT,
                           "The runtime failed to start the container: check the command, mounts and security context.")
    CONTAINER_CANNOT_RUN = ("ContainerCannotRun", Classification.TRANSIENT,
                            "The container could not run: check that the entrypoint exists and is executable.")
    START_FAILURE = ("StartFailure", Classification.TRANSIENT,
                     "The process could not start (exit 126/127 or runtime error): fix the entrypoint/command or the image.")
    # Run-time problems.
    CRASH_LOOP_BACK_OFF = ("CrashLoopBackOff", Classification.TRANSIENT,
                           "The container keeps exiting and is restarted with back-off: read its logs from the previous run and fix the cause.")
    OOM_KILLED = ("OOMKilled", Classification.TRANSIENT,
                  "The container exceeded its memory limit: raise the limit or reduce the process's memory use.")
    ERROR = ("Error", Classification.TRANSIENT,
             "The container exited with a non-zero code: read its logs for the cause.")
    UNHEALTHY = ("Unhealthy", Classification.TRANSIENT,
                 "The health check is failing: check the health command and the service it probes.")
    DEADLINE_EXCEEDED = ("DeadlineExceeded", Classification.TRANSIENT,
                         "The job ran past its active deadline: speed it up or raise activeDeadlineSeconds.")
    EVICTED = ("Evicted", Classification.TRANSIENT,
               "The pod was evicted for node pressure: check the node's memory/disk and the pod's requests.")
    OTHER = ("Other", Classification.TRANSIENT,
             "An unrecognised reason: see the raw reason in the status view and the runtime's events.")


    @classmethod
    def parse(cls, raw: str | None) -> "Reason":
        """Map a raw runtime reason to the vocabulary; unknown ones become OTHER (bounded labels)."""
        if not raw:
            return cls.OTHER
        return _BY_VALUE.get(raw, cls.OTHER)


_BY_VALUE: dict[str, Reason] = {r.value: r for r in Reason}
