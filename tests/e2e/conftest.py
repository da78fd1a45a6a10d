"""The amd64 image, built once per session for the image and compose tests."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import images
from tests.integration.dockerd import PrivateDockerd

IMAGE_TAG = "resilience-exporter:test"


@pytest.fixture(scope="session")
def exporter_image(dockerd: PrivateDockerd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    started = time.monotonic()
    images.build(dockerd, images.HOST_ARCH, IMAGE_TAG, tmp_path_factory.mktemp("image"))
    print(f"\n{images.HOST_ARCH} image built in {time.monotonic() - started:.0f} s")
    yield IMAGE_TAG
