"""Components that launch a tracked job: TorchX's own components plus the lineage env.

The trackers themselves come from ``torchx run --tracker`` (or ``.torchxconfig``); these
components add what belongs to the job: the parent run it derives from and strict mode.
"""

from typing import Dict, List, Optional

import torchx
from torchx import specs
from torchx.components import dist as torchx_dist
from torchx.components import utils as torchx_utils

from trackers.env import ENV_TORCHX_PARENT_RUN_ID, ENV_TORCHX_TRACKER_STRICT


def _with_tracking(
    app: specs.AppDef, parent_run_id: Optional[str], strict: bool
) -> specs.AppDef:
    for role in app.roles:
        if parent_run_id:
            role.env[ENV_TORCHX_PARENT_RUN_ID] = parent_run_id
        if strict:
            role.env[ENV_TORCHX_TRACKER_STRICT] = "1"
    return app


def python(
    *args: str,
    m: Optional[str] = None,
    c: Optional[str] = None,
    script: Optional[str] = None,
    image: str = torchx.IMAGE,
    name: str = "torchx_utils_python",
    cpu: int = 1,
    gpu: int = 0,
    memMB: int = 1024,
    h: Optional[str] = None,
    num_replicas: int = 1,
    env: Optional[Dict[str, str]] = None,
    max_retries: int = 0,
    parent_run_id: Optional[str] = None,
    strict: bool = False,
) -> specs.AppDef:
    """Runs a Python module, script or command as one tracked job.

    Args:
        args: arguments passed to the program
        m: run library module as a script
        c: program passed as string (may error if scheduler has a length limit)
        script: .py script to run
        image: image to run on
        name: name of the job
        cpu: number of cpus per replica
        gpu: number of gpus per replica
        memMB: cpu memory in MB per replica
        h: a registered named resource (if specified takes precedence over cpu, gpu, memMB)
        num_replicas: number of copies to run (each on its own container)
        env: environment variables to set in the job
        max_retries: how many times the scheduler may restart the job after a failure (on
            Slurm, a requeue that keeps the run id: records go on into the same run)
        parent_run_id: run id (app handle) of the run this job derives from
        strict: make tracking failures inside the job fatal (TORCHX_TRACKER_STRICT=1)
    """
    app = torchx_utils.python(
        *args,
        m=m,
        c=c,
        script=script,
        image=image,
        name=name,
        cpu=cpu,
        gpu=gpu,
        memMB=memMB,
        h=h,
        num_replicas=num_replicas,
    )
    for role in app.roles:
        role.env.update(env or {})
        role.max_retries = max_retries
    return _with_tracking(app, parent_run_id, strict)


def ddp(
    *script_args: str,
    script: Optional[str] = None,
    m: Optional[str] = None,
    image: str = torchx.IMAGE,
    name: str = "/",
    h: Optional[str] = None,
    cpu: int = 2,
    gpu: int = 0,
    memMB: int = 1024,
    j: str = "1x2",
    env: Optional[Dict[str, str]] = None,
    max_retries: int = 0,
    rdzv_port: int = 29500,
    mounts: Optional[List[str]] = None,
    debug: bool = False,
    parent_run_id: Optional[str] = None,
    strict: bool = False,
) -> specs.AppDef:
    """Runs a torchrun-launched distributed job (TorchX's ``dist.ddp``) with tracking.

    Every rank gets the same run id; ``trackers.AppRun`` records from each rank into that run.

    Args:
        script_args: arguments to the main module
        script: script or binary to run within the image
        m: the python module path to run
        image: image (e.g. docker)
        name: job name override in the format ``{experimentname}/{runname}`` or
            ``{experimentname}/`` or ``/{runname}`` or ``{runname}``
        h: a registered named resource (if specified takes precedence over cpu, gpu, memMB)
        cpu: number of cpus per replica
        gpu: number of gpus per replica
        memMB: cpu memory in MB per replica
        j: [{min_nnodes}:]{nnodes}x{nproc_per_node}, for gpu hosts, nproc_per_node must not
            exceed num gpus
        env: environment varibles to be passed to the run (e.g. ENV1=v1,ENV2=v2,ENV3=v3)
        max_retries: the number of scheduler retries allowed
        rdzv_port: the port on rank0's host to use for hosting the c10d store used for
            rendezvous. Only takes effect when running multi-node.
        mounts: mounts to mount into the worker environment/container
            (ex. type=<bind/volume>,src=/host,dst=/job[,readonly]).
        debug: whether to run with preset debug flags enabled
        parent_run_id: run id (app handle) of the run this job derives from
        strict: make tracking failures inside the job fatal (TORCHX_TRACKER_STRICT=1)
    """
    app = torchx_dist.ddp(
        *script_args,
        script=script,
        m=m,
        image=image,
        name=name,
        h=h,
        cpu=cpu,
        gpu=gpu,
        memMB=memMB,
        j=j,
        env=env,
        max_retries=max_retries,
        rdzv_port=rdzv_port,
        mounts=mounts,
        debug=debug,
    )
    return _with_tracking(app, parent_run_id, strict)
