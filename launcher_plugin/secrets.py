"""Credentials for trackers reach the job by reference, never by value in a spec, script or log.

``torchx run --tracker-secret VAR`` (repeatable; or ``TORCHX_TRACKER_SECRETS=VAR,...`` in the
launching shell) names an env var the job needs, such as ``MLFLOW_TRACKING_TOKEN`` or
``AWS_SECRET_ACCESS_KEY``. How it gets there depends on the scheduler:

``local_cwd``, ``slurm``
    The job inherits the launching process's environment (``local_cwd`` copies ``os.environ``;
    ``sbatch`` exports the submitting environment and TorchX's ``srun --export=ALL`` passes it
    on). So the value flows through the environment only: it is checked to be set at launch,
    and it is never put into the role's env, the sbatch script or the dryrun output.
``kubernetes`` (and ``kubernetes_mcad``)
    ``--tracker-secret VAR=secret:NAME:KEY`` adds ``valueFrom.secretKeyRef`` (Secret ``NAME``,
    key ``KEY``) to every container; the pod reads the value from the cluster. A plain ``VAR``
    is refused there: the launching shell's value would have to be written into the spec.
other schedulers
    Refused with an error naming the supported ones (``local_docker`` would copy the value into
    the container spec).

The launch record lists the names and references (``launch.secrets``), never values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trackers.errors import TrackerConfigError

ENV_TORCHX_TRACKER_SECRETS = "TORCHX_TRACKER_SECRETS"

#: Schedulers whose jobs inherit the launching process's environment.
INHERITING_SCHEDULERS = frozenset({"local_cwd", "local", "slurm"})
#: Schedulers that take a Kubernetes Secret reference.
KUBERNETES_SCHEDULERS = frozenset({"kubernetes", "kubernetes_mcad"})

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_K8S_KEY = re.compile(r"[-._a-zA-Z0-9]+")


@dataclass(frozen=True)
class SecretSpec:
    """One secret env var for the job, and where its value comes from."""

    env_var: str
    k8s_secret: str | None = None
    k8s_key: str | None = None

    @classmethod
    def parse(cls, text: str) -> SecretSpec:
        """``VAR`` or ``VAR=secret:NAME:KEY``."""
        var, sep, source = text.strip().partition("=")
        if not _ENV_NAME.fullmatch(var):
            raise TrackerConfigError(
                f"--tracker-secret {text!r}: {var!r} is not an env var name "
                "([A-Za-z_][A-Za-z0-9_]*); expected VAR or VAR=secret:NAME:KEY"
            )
        if not sep:
            return cls(var)
        kind, _, rest = source.partition(":")
        name, _, key = rest.partition(":")
        if kind != "secret" or not _K8S_NAME.fullmatch(name) or not _K8S_KEY.fullmatch(key):
            raise TrackerConfigError(
                f"--tracker-secret {text!r}: expected VAR=secret:NAME:KEY with a Kubernetes "
                "Secret name (lower-case letters, digits, '-', '.') and a key"
            )
        return cls(var, name, key)

    def describe(self) -> str:
        """What the launch record says about it (a reference, never a value)."""
        if self.k8s_secret:
            return f"{self.env_var} <- secret {self.k8s_secret}/{self.k8s_key}"
        return f"{self.env_var} <- launching environment"


def parse_secrets(flags: Sequence[str], environ: Mapping[str, str]) -> list[SecretSpec]:
    """Secrets from ``--tracker-secret`` flags, else from ``TORCHX_TRACKER_SECRETS``."""
    items = list(flags) or [
        s for s in environ.get(ENV_TORCHX_TRACKER_SECRETS, "").split(",") if s.strip()
    ]
    specs: dict[str, SecretSpec] = {}
    for item in items:
        spec = SecretSpec.parse(item)
        specs[spec.env_var] = spec
    return list(specs.values())


def check_secrets(
    secrets: Sequence[SecretSpec], scheduler: str, environ: Mapping[str, str]
) -> None:
    """Refuse what cannot be delivered by reference on ``scheduler``, before submitting."""
    for secret in secrets:
        if scheduler in KUBERNETES_SCHEDULERS:
            if secret.k8s_secret is None:
                raise TrackerConfigError(
                    f"--tracker-secret {secret.env_var}: on {scheduler} name a Kubernetes "
                    f"Secret, e.g. --tracker-secret {secret.env_var}=secret:NAME:KEY (the value "
                    "would otherwise be written into the pod spec)"
                )
        elif scheduler in INHERITING_SCHEDULERS:
            if secret.k8s_secret is not None:
                raise TrackerConfigError(
                    f"--tracker-secret {secret.env_var}: a Kubernetes Secret reference does "
                    f"not work on {scheduler}; give just the name and set it in your shell"
                )
            if secret.env_var not in environ:
                raise TrackerConfigError(
                    f"--tracker-secret {secret.env_var}: {secret.env_var} is not set in the "
                    f"launching environment ({scheduler} jobs inherit it from there)"
                )
        else:
            raise TrackerConfigError(
                f"--tracker-secret is supported on local_cwd, slurm and kubernetes, "
                f"not on {scheduler}"
            )


def strip_secret_values(env: dict[str, str], secrets: Sequence[SecretSpec]) -> None:
    """Remove secret vars from a role's env, so no value lands in a spec (in place)."""
    for secret in secrets:
        env.pop(secret.env_var, None)


def add_kubernetes_secret_refs(request: Any, secrets: Sequence[SecretSpec]) -> None:
    """Add ``valueFrom.secretKeyRef`` env entries to every container of TorchX's Volcano job."""
    from kubernetes.client import V1EnvVar, V1EnvVarSource, V1SecretKeySelector

    refs = [s for s in secrets if s.k8s_secret and s.k8s_key]
    if not refs:
        return
    for task in request.resource["spec"]["tasks"]:
        for container in task["template"].spec.containers:
            env = [e for e in (container.env or []) if e.name not in {s.env_var for s in refs}]
            env.extend(
                V1EnvVar(
                    name=s.env_var,
                    value_from=V1EnvVarSource(
                        secret_key_ref=V1SecretKeySelector(name=s.k8s_secret, key=str(s.k8s_key))
                    ),
                )
                for s in refs
            )
            container.env = env
