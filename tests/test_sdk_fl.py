"""The SDK's federated-learning builders against a real in-process node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rpc_fixtures import CHAIN_ID, start_node, unhex

from client_sdk import fl, put_blob
from client_sdk.keys import Keypair
from client_sdk.proofs import checked_value
from stf.fl.records import NO_EPOCH, Verdict
from stf.fl.rules import EpochRules
from stf.fl.task import TaskParams
from stf.genesis import GenesisStake


async def test_a_federation_epoch_through_the_sdk(tmp_path: Path) -> None:
    requester = Keypair.generate()
    clients = [Keypair.generate() for _ in range(6)]
    stakes = tuple(GenesisStake(c.public_key, bytes(20), 100) for c in clients)
    d, shift = 300, 10
    model = fl.model_blob(np.zeros(d), shift)
    script = b"# train for one local epoch\n"
    params = TaskParams(
        "sdk",
        (("w", (3, 100)),),
        "int8",
        shift,
        fl.blob_id(model),
        fl.blob_id(script),
        2,
        900_000,
        5,
        6,
        3,
        bytes(32),
        EpochRules(f=1),
    )
    async with start_node(tmp_path / "node", genesis_stakes=stakes) as h:
        await h.send_ok(put_blob(requester, CHAIN_ID, 0, model))
        await h.send_ok(put_blob(requester, CHAIN_ID, 1, script))
        task_id = await h.send_ok(fl.create_task(requester, CHAIN_ID, 2, params))
        await h.seal()
        for c in clients:
            await h.send_ok(fl.join_task(c, CHAIN_ID, 0, task_id))
        await h.seal()
        rng = np.random.default_rng(7)
        direction = rng.normal(0, 0.03, d)
        updates = [fl.quantize(direction + rng.normal(0, 0.01, d), shift) for _ in range(5)]
        updates.append(np.zeros(d, dtype=np.int8))  # a free rider
        for c, u in zip(clients, updates, strict=True):
            await h.send_ok(fl.commit_update(c, CHAIN_ID, 1, task_id, 0, fl.blob_id(u.tobytes())))
        await h.seal()  # everyone committed: the reveal phase opens
        for c, u in zip(clients, updates, strict=True):
            await h.send_ok(fl.submit_update(c, CHAIN_ID, 2, task_id, 0, u))
        await h.seal()  # everyone revealed: the epoch closes in this block

        task = await h.result("mps_getTask", "0x" + task_id.hex())
        assert task["epoch"] == 1
        assert task["scriptCid"] == fl.script_cid(script)
        assert task["initModelCid"] == fl.script_cid(model)
        epoch = await h.result("mps_getEpoch", "0x" + task_id.hex(), 0)
        flags = {unhex(r["client"]): r["flagNames"] for r in epoch["records"]}
        assert "ZERO" in flags[clients[-1].public_key]
        assert all(flags[c.public_key] == [] for c in clients[:-1])

        base = await h.result("mps_getBlob", epoch["nextBaseModel"])
        step = np.frombuffer(unhex(base), dtype="<i4").astype(np.int64)
        honest = np.stack(updates[:-1]).astype(np.int64)
        # the next base moved toward the honest mean, and no coordinate beyond its range
        assert np.abs(step).max() <= np.abs(honest).max()
        assert np.corrcoef(step, honest.mean(axis=0))[0, 1] > 0.99

        # an all-zero update is a strike, not a slash: the free rider stays in the task (one
        # more strike would bar it), its stake is not at stake; the honest client has no strike
        for who, strikes in ((clients[-1], 1), (clients[0], 0)):
            state = await h.result(
                "mps_getSlashingState", "0x" + task_id.hex(), "0x" + who.public_key.hex()
            )
            standing = (state["strikes"], state["slashable"], state["barred"])
            assert standing == (strikes, False, False)
            assert state["slashEpoch"] is None and state["barredEpoch"] is None
            assert state["reason"] == 0 and state["reasonNames"] == []
            raw = checked_value(state["verdict"])
            assert raw is not None
            assert Verdict.decode(raw) == Verdict(strikes, False, 0, NO_EPOCH)
            assert all(checked_value(r) is not None for r in state["records"])

        report = fl.report_evaluation(requester, CHAIN_ID, 3, task_id, 0, 0.95)
        await h.send_ok(report)
        await h.seal()
        task = await h.result("mps_getTask", "0x" + task_id.hex())
        assert task["status"] == "complete"
