"""``run_client``: a Flower-style :class:`~client_sdk.train.Client` through a task's epochs.

Apart from :mod:`client_sdk.train` (torch and parameter lists, no node) because this is the one
piece that needs a connected :class:`~client_sdk.client.MPSClient`; keeping it here leaves the
training helpers free of the client, and the client free of them until an update is a module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from .answers import as_bytes
from .client import MPSClient
from .errors import DuplicateUpdate, WrongEpoch
from .train import Client, join_parameters, split_parameters

__all__ = ["run_client"]


def run_client(
    client: Client,
    mps: MPSClient,
    task_id: bytes,
    epochs: int | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    timeout: float = 300.0,
) -> None:
    """Take part in a task: join it (if not joined yet), then per epoch fetch the base model,
    ``client.fit`` it, submit the delta and wait for the epoch to close. Stops after ``epochs``
    epochs (None: until the task stops). ``on_epoch(epoch, summary)`` sees each closed epoch
    (``mps_getEpoch``: scores, ranks, flags). An update already sent for the epoch (a restart)
    is not sent again.
    """
    me = mps.require_key().public_key
    params = mps.task_params(task_id)
    task = mps.task(task_id)
    if me not in [as_bytes(c) for c in task["clients"]]:
        mps.join(task_id)
    done = 0
    while epochs is None or done < epochs:
        task = mps.task(task_id)
        if task["status"] != "open":
            return
        epoch = int(task["epoch"])
        base = mps.base_model(task_id, epoch)
        config = {"task": task_id, "epoch": epoch}
        new, _, _ = client.fit(split_parameters(base, params), config)
        # an update sent before a restart, or an epoch the window closed without us
        with contextlib.suppress(DuplicateUpdate, WrongEpoch):
            mps.submit_update(task_id, epoch, join_parameters(list(new), params) - base)
        summary = mps.wait_for_epoch(task_id, epoch, timeout)
        if on_epoch is not None:
            on_epoch(epoch, summary)
        done += 1
