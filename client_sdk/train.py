"""Training helpers: torch modules as task vectors, local training, a Flower-style client.

A task's model is one float vector in the order of ``TaskParams.layout`` (named tensors with
their shapes). :func:`flatten` and :func:`unflatten_into` move a torch module's tensors to and
from that vector by name, and refuse a module whose tensors do not match the layout.
:func:`layout_of` gives the layout of a module, for a requester creating the task.

:class:`Client` has Flower's ``NumPyClient`` shape (``get_parameters`` / ``fit`` /
``evaluate`` on lists of arrays, one per layout tensor), so an existing Flower client ports by
changing its base class; :func:`client_sdk.runner.run_client` drives one through a task's epochs.

torch is imported on first use: the module imports without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from math import prod
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from stf.fl.task import TaskParams

from .errors import InvalidArgument, SDKError

Layout = tuple[tuple[str, tuple[int, ...]], ...]
Vector = npt.NDArray[np.float64]

__all__ = [
    "Client",
    "LayoutError",
    "TorchClient",
    "flatten",
    "join_parameters",
    "layout_of",
    "split_parameters",
    "train_update",
    "unflatten_into",
]


class LayoutError(SDKError, ValueError):
    """A module's tensors (or a vector, or a parameter list) do not match the task's layout."""


def _layout(layout: TaskParams | Layout | None, module: Any) -> Layout:
    if layout is None:
        return layout_of(module)
    return layout.layout if isinstance(layout, TaskParams) else layout


def layout_of(module: Any) -> Layout:
    """The layout of a module's trainable parameters, in ``named_parameters`` order."""
    return tuple(
        (name, tuple(int(x) for x in p.shape))
        for name, p in module.named_parameters()
        if p.requires_grad
    )


def _tensors(module: Any, layout: Layout) -> list[Any]:
    """The module's tensors named by ``layout``, checked against it, in its order."""
    state = module.state_dict(keep_vars=True)
    missing = [n for n, _ in layout if n not in state]
    if missing:
        raise LayoutError(
            f"the module has no tensor {missing[0]!r} of the task layout "
            f"(it has {', '.join(list(state)[:8])}{'...' if len(state) > 8 else ''})"
        )
    names = {n for n, _ in layout}
    extra = [n for n, p in module.named_parameters() if p.requires_grad and n not in names]
    if extra:
        raise LayoutError(f"trainable parameter {extra[0]!r} is not in the task layout")
    out = []
    for name, shape in layout:
        t = state[name]
        if tuple(t.shape) != tuple(shape):
            raise LayoutError(
                f"tensor {name!r} has shape {tuple(t.shape)}, the task layout says {tuple(shape)}"
            )
        out.append(t)
    return out


def flatten(module: Any, layout: TaskParams | Layout | None = None) -> Vector:
    """The module's tensors as one float64 vector in layout order (``layout`` a task's
    parameters or its layout; None: the module's own trainable parameters)."""
    ts = _tensors(module, _layout(layout, module))
    if not ts:
        return np.zeros(0)
    return np.concatenate([t.detach().cpu().double().reshape(-1).numpy() for t in ts])


def unflatten_into(
    module: Any, vector: npt.ArrayLike, layout: TaskParams | Layout | None = None
) -> None:
    """Copy a layout-ordered vector into the module's tensors (in place, no gradient)."""
    import torch

    lay = _layout(layout, module)
    ts = _tensors(module, lay)
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    d = sum(prod(s) for _, s in lay)
    if v.size != d:
        raise LayoutError(f"the vector has {v.size} values, the layout {d}")
    at = 0
    with torch.no_grad():
        for t, (_, shape) in zip(ts, lay, strict=True):
            n = prod(shape)
            src = torch.from_numpy(v[at : at + n].reshape(shape).copy())
            t.copy_(src.to(dtype=t.dtype, device=t.device))
            at += n


def split_parameters(vector: npt.ArrayLike, layout: TaskParams | Layout) -> list[Vector]:
    """A layout-ordered vector as one array per tensor, shaped (Flower's parameter list)."""
    lay = layout.layout if isinstance(layout, TaskParams) else layout
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    d = sum(prod(s) for _, s in lay)
    if v.size != d:
        raise LayoutError(f"the vector has {v.size} values, the layout {d}")
    out, at = [], 0
    for _, shape in lay:
        n = prod(shape)
        out.append(v[at : at + n].reshape(shape))
        at += n
    return out


def join_parameters(arrays: list[npt.ArrayLike], layout: TaskParams | Layout) -> Vector:
    """One array per layout tensor back into the layout-ordered vector (shapes checked)."""
    lay = layout.layout if isinstance(layout, TaskParams) else layout
    if len(arrays) != len(lay):
        raise LayoutError(f"{len(arrays)} arrays for a layout of {len(lay)} tensors")
    parts = []
    for a, (name, shape) in zip(arrays, lay, strict=True):
        arr = np.asarray(a, dtype=np.float64)
        if arr.size != prod(shape):
            raise LayoutError(
                f"array for {name!r} has {arr.size} values, its shape {shape} needs {prod(shape)}"
            )
        parts.append(arr.reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0)


def train_update(
    module: Any,
    loader: Iterable[Any],
    task_params: TaskParams,
    base: npt.ArrayLike,
    epochs: int = 1,
    lr: float = 0.05,
    loss_fn: Callable[[Any, Any], Any] | None = None,
    steps: int | None = None,
) -> Vector:
    """Load ``base`` into the module, train it on ``loader`` (batches ``(x, y)``) with plain
    SGD for ``epochs`` passes, and return the float delta (trained minus base) in layout order,
    ready for :meth:`MPSClient.submit_update`.

    ``steps``: exactly that many minibatches instead (the loader is read again from the start as
    often as needed; ``epochs`` is then unused). Prefer it in a federation of unequal data
    sizes: with whole passes a client with 5x the data takes 5x the steps and sends an update
    ~2x the typical norm, which the chain's outlier test flags (bench/detection.py: a fixed 8
    steps left 0 honest clients barred where one pass left up to 12 of 50; docs/user-guide.md).
    """
    import torch

    unflatten_into(module, base, task_params)
    start = flatten(module, task_params)  # the base as the module holds it (its dtype)
    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    tensors = _tensors(module, task_params.layout)
    opt = torch.optim.SGD([t for t in tensors if t.requires_grad], lr=lr)
    module.train()
    for x, y in _batches(loader, epochs, steps):
        opt.zero_grad()
        loss = loss_fn(module(x), y)
        loss.backward()
        opt.step()
    return flatten(module, task_params) - start


def _batches(loader: Iterable[Any], epochs: int, steps: int | None) -> Iterator[Any]:
    """``epochs`` passes over ``loader``, or exactly ``steps`` batches read round and round."""
    if steps is None:
        for _ in range(epochs):
            yield from loader
        return
    if steps < 0:
        raise InvalidArgument("steps must not be negative")
    done = 0
    while done < steps:
        before = done
        for batch in loader:
            if done == steps:
                return
            yield batch
            done += 1
        if done == before:
            raise InvalidArgument("the loader yields no batch")


class Client(Protocol):
    """Flower's ``NumPyClient`` interface: parameters are lists of arrays, one per layout tensor.

    A protocol: a ``flwr.client.NumPyClient`` is one as it stands (tests/test_flower.py runs an
    unchanged one through :func:`client_sdk.runner.run_client`). ``config`` carries
    ``{"task": task id, "epoch": n}`` from ``run_client``.
    """

    def get_parameters(self, config: dict[str, Any]) -> list[Vector]:
        raise NotImplementedError

    def fit(
        self, parameters: list[Vector], config: dict[str, Any]
    ) -> tuple[list[Vector], int, dict[str, Any]]:
        """Train from ``parameters``; return (new parameters, examples used, metrics)."""
        raise NotImplementedError

    def evaluate(
        self, parameters: list[Vector], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        """Evaluate ``parameters``; return (loss, examples used, metrics)."""
        raise NotImplementedError


class TorchClient(Client):
    """A :class:`Client` for a torch module trained with :func:`train_update`."""

    def __init__(
        self,
        module: Any,
        train_loader: Iterable[Any],
        task_params: TaskParams,
        test_loader: Iterable[Any] | None = None,
        local_epochs: int = 1,
        lr: float = 0.05,
        loss_fn: Callable[[Any, Any], Any] | None = None,
        local_steps: int | None = None,
    ) -> None:
        """``local_steps``: a fixed number of minibatches per round (see :func:`train_update`)."""
        self.module = module
        self.local_steps = local_steps
        self.train_loader = train_loader
        self.test_loader = test_loader
        self.params = task_params
        self.local_epochs = local_epochs
        self.lr = lr
        self.loss_fn = loss_fn

    def get_parameters(self, config: dict[str, Any]) -> list[Vector]:
        return split_parameters(flatten(self.module, self.params), self.params)

    def fit(
        self, parameters: list[Vector], config: dict[str, Any]
    ) -> tuple[list[Vector], int, dict[str, Any]]:
        base = join_parameters(list(parameters), self.params)
        delta = train_update(
            self.module, self.train_loader, self.params, base, self.local_epochs, self.lr,
            self.loss_fn, self.local_steps,
        )  # fmt: skip
        n = sum(len(y) for _, y in self.train_loader)
        return split_parameters(base + delta, self.params), n, {}

    def evaluate(
        self, parameters: list[Vector], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        import torch

        if self.test_loader is None:
            raise InvalidArgument("TorchClient has no test_loader to evaluate on")
        unflatten_into(self.module, join_parameters(list(parameters), self.params), self.params)
        loss_fn = self.loss_fn or torch.nn.functional.cross_entropy
        self.module.eval()
        total, correct, loss = 0, 0, 0.0
        with torch.no_grad():
            for x, y in self.test_loader:
                out = self.module(x)
                loss += float(loss_fn(out, y)) * len(y)
                correct += int((out.argmax(dim=1) == y).sum())
                total += len(y)
        return loss / max(total, 1), total, {"accuracy": correct / max(total, 1)}
