"""The Kubernetes API client: in-cluster service account, else a kubeconfig file and context."""
from __future__ import annotations

import os
from typing import Any


def api_client(kubeconfig: str = "", context: str = "") -> Any:
    """A `kubernetes.client.ApiClient`; in a pod with no kubeconfig/context given, in-cluster config."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if not kubeconfig and not context and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)
    else:  # kubeconfig "" means $KUBECONFIG or ~/.kube/config, as kubectl does
        config.load_kube_config(config_file=kubeconfig or None, context=context or None,
                                client_configuration=configuration)
    return client.ApiClient(configuration)
