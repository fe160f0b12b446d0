"""``train_update(steps=K)`` takes exactly K minibatch steps, whatever the client's data size.

Why it exists: with whole passes a client with more data takes more steps and sends a larger
update, and the chain's outlier test flags the biggest honest clients (bench/detection.py
``--local-steps``). With a fixed step count two clients with 2 and 7 batches of the same data
send updates of comparable norm.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from client_sdk.errors import InvalidArgument
from client_sdk.train import TorchClient, flatten, layout_of, train_update
from stf.fl.rules import EpochRules
from stf.fl.task import TaskParams

torch = pytest.importorskip("torch")


def setup(batches: int) -> tuple[Any, list[Any], TaskParams]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 4, generator=gen)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loader = [(x, y)] * batches  # the same batch: every step sees the same data
    params = TaskParams(
        name="t",
        layout=layout_of(model),
        dtype="int8",
        shift=8,
        init_model=bytes(32),
        script=bytes(32),
        epochs=1,
        target_accuracy_ppm=1,
        min_clients=3,
        max_clients=4,
        window_blocks=5,
        evaluator=bytes(32),
        rules=EpochRules(f=0),
    )
    return model, loader, params


def counted(loader: list[Any]) -> tuple[list[int], Any]:
    seen = [0]

    def loss(out: Any, y: Any) -> Any:
        seen[0] += 1
        return torch.nn.functional.cross_entropy(out, y)

    return seen, loss


@pytest.mark.parametrize(("batches", "steps"), [(2, 5), (7, 5), (3, 3), (4, 0)])
def test_exactly_the_given_number_of_steps(batches: int, steps: int) -> None:
    model, loader, params = setup(batches)
    seen, loss = counted(loader)
    base = flatten(model, params)
    delta = train_update(model, loader, params, base, epochs=9, loss_fn=loss, steps=steps)
    assert seen[0] == steps
    assert (np.abs(delta).max() > 0) == (steps > 0)


def test_a_fixed_step_count_makes_the_update_independent_of_the_data_size() -> None:
    deltas = []
    for batches in (2, 7):
        model, loader, params = setup(batches)
        base = flatten(model, params)
        deltas.append(train_update(model, loader, params, base, steps=4))
    assert np.allclose(deltas[0], deltas[1])  # the same 4 steps on the same batch
    model, loader, params = setup(7)
    whole = train_update(model, loader, params, flatten(model, params))  # one pass: 7 steps
    assert np.linalg.norm(whole) > 1.3 * np.linalg.norm(deltas[0])


def test_the_torch_client_passes_its_step_count() -> None:
    model, loader, params = setup(6)
    seen, loss = counted(loader)
    client = TorchClient(model, loader, params, loss_fn=loss, local_steps=2)
    client.fit(client.get_parameters({}), {})
    assert seen[0] == 2


def test_bad_step_counts_are_refused() -> None:
    model, loader, params = setup(2)
    base = flatten(model, params)
    with pytest.raises(InvalidArgument, match="negative"):
        train_update(model, loader, params, base, steps=-1)
    with pytest.raises(InvalidArgument, match="no batch"):
        train_update(model, [], params, base, steps=1)
