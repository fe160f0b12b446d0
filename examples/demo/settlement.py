"""After the last epoch: L1 finality, the verdicts proven against it, the slashes, the rewards.

The verdicts are read only once a batch holding the whole task is final on the L1, so every
proof is checked against a root the L1 holds rather than the node's word; the slashes and the
settlement are the node's aggregator's, acting on that root, and the demo only watches them.
"""

from __future__ import annotations

import time
from typing import Any

from client_sdk.errors import RPCError, SDKError
from client_sdk.slashing import SlashingState
from stf.fl.flags import flag_names

from .attacks import EXPECTED
from .federation import ETH, Federation
from .members import Member
from .report import log


def finish(fed: Federation) -> dict[str, Any]:
    """Wait for the L1, print the verdicts, the slashes and the rewards; the run's results
    (what ``demo.json`` holds, less the figure and the timings)."""
    for r in fed.reports:
        r.result()
    _wait_for_finality(fed)
    caught, missed, honest_slashed = _verdicts(fed)
    info = _l1_settlement(fed)
    paid = _claim_rewards(fed)
    refund = _refund(fed)
    return {
        "task": fed.task_id.hex(),
        "shift": fed.p.shift,
        "epochs": fed.epochs,
        "accuracy": fed.acc_chain,
        "fedavg_all": fed.baselines.acc_fedavg,
        "fedavg_honest": fed.baselines.acc_honest,
        "referenced": fed.referenced,
        "clients": [
            {
                "name": m.name,
                "role": m.role,
                "key": m.key.hex(),
                "slashable": m.slashable,
                "barred": m.barred,
                "barred_epoch": m.barred_epoch,
                "reason": m.reason_names,
                "slash_epoch": m.slash_epoch,
                "strikes": m.strikes,
                "scores": m.scores,
                "flags": [flag_names(f) for f in m.flags],
                "trust": m.trust,
                "l1_status": m.l1_status,
                "reward_wei": m.reward_wei,
            }
            for m in fed.members
        ],
        "caught": caught,
        "missed": missed,
        "honest_slashed": honest_slashed,
        "pool_wei": info["pool"],
        "paid_wei": paid,
        "refund_wei": refund,
    }


def _wait_for_finality(fed: Federation) -> None:
    """Until a finalized batch on the L1 reaches the chain's head (the task's last block)."""
    head = int(fed.requester.rpc.call("mps_blockNumber"))
    log(f"\n## L1: waiting for a finalized batch up to block {head}")
    t0 = time.monotonic()
    l1 = fed.requester.l1
    while True:
        fb = l1.finalized_batch()
        if fb is not None and fb[2] >= head:
            break
        if time.monotonic() - t0 > 180:
            raise TimeoutError("no finalized batch reached the task's last block in 180 s")
        time.sleep(0.5)
    log(
        f"  batch {fb[0]} (blocks up to {fb[2]}) final after {time.monotonic() - t0:.1f} s"
        " (committed by the node's poster, then the dev challenge window of 5 L1 blocks)"
    )


def _verdicts(fed: Federation) -> tuple[list[str], list[str], list[str]]:
    """Every member's slashing state, proven against the L1 batch root; the roles caught, the
    roles missed, and the honest clients slashed (none, if the rules work)."""
    members, task_id = fed.members, fed.task_id
    log("\n## verdicts (mps_getSlashingState, every proof checked against the L1 batch root)")
    states = list(fed.ex.map(lambda m: m.mps.slashing_state(task_id, trust="l1"), members))
    caught: list[str] = []
    missed: list[str] = []
    honest_slashed: list[str] = []
    for m, st in zip(members, states, strict=True):
        m.slashable, m.barred, m.strikes = st.slashable, st.barred, st.strikes
        if m.out:
            m.reason_names = list(st.reason_names)
            m.slash_epoch, m.barred_epoch = st.slash_epoch, st.barred_epoch
        log(f"  {m.name:9s} {m.role:9s} {_verdict_line(st)}   [{st.verified_against}]")
        if not m.honest:
            (caught if m.out else missed).append(m.role)
        elif m.out:
            honest_slashed.append(m.name)
    log(f"  caught (slashable or barred): {', '.join(caught) or 'none'}")
    for m in members:
        if not m.honest and not m.out:
            log(f"  not caught: {m.role} (bench/detection.py: {EXPECTED[m.role]})")
    log(f"  honest clients slashed or barred: {', '.join(honest_slashed) or 'none'}")
    return caught, missed, honest_slashed


def _verdict_line(st: SlashingState) -> str:
    flagged_epochs = [r["epoch"] for r in st.records if r["flags"]]
    if st.slashable:
        return f"SLASHABLE in epoch {st.slash_epoch}: {', '.join(st.reason_names)}"
    if st.barred:
        return f"BARRED in epoch {st.barred_epoch}: {', '.join(st.reason_names)} (stake kept)"
    if flagged_epochs:
        return f"{st.strikes} strike(s) now (flagged in epochs {flagged_epochs})"
    return "clean"


def _l1_settlement(fed: Federation) -> dict[str, Any]:
    """Until the aggregator has slashed every slashable member and settled the task (or two
    minutes passed); every member's L1 status, and the task's ``RewardManager`` record."""
    members, task_id, l1 = fed.members, fed.task_id, fed.requester.l1
    log("\n## L1: slashes and settlement (the node's aggregator acts on the finalized root)")
    t0 = time.monotonic()
    want = [m for m in members if m.slashable]
    while True:
        got = fed.ex.map(lambda m: m.mps.l1.status(m.key), members)
        statuses = {m.name: st for m, st in zip(members, got, strict=True)}
        info = l1.task(task_id)
        if info["settled"] and all(statuses[m.name] == "slashed" for m in want):
            break
        if time.monotonic() - t0 > 120:
            log("  (timed out waiting for the aggregator)")
            break
        time.sleep(0.5)
    for m in members:
        m.l1_status = statuses[m.name]
    log(f"  after {time.monotonic() - t0:.1f} s; StakingRegistry.statusOf:")
    for m in members:
        if not m.honest:
            log(f"    {m.name:9s} {m.role:9s} {m.l1_status}")
    honest_status = sorted({m.l1_status for m in members if m.honest})
    log(f"    honest clients: {', '.join(honest_status)}")
    log(
        f"  RewardManager: settled {info['settled']}, reward pool {info['pool']} wei"
        f" ({info['pool'] / ETH:.4f} ETH: min(epochs x fee per epoch, deposit) less the"
        f" protocol's share), {info['totalCleanUpdates']} reward credits; a client never barred"
        " nor slashed gets pool x its credits / all credits"
    )
    return info


def _claim_rewards(fed: Federation) -> int:
    """Every member claims (the flagged ones are refused); the total paid, in wei."""
    members, task_id = fed.members, fed.task_id
    log("\n## rewards (claim_rewards: each reward leaf proven against the settlement root)")

    def claim(m: Member) -> None:
        try:
            m.reward_wei = m.mps.claim_rewards(task_id)
        except (SDKError, RPCError, ValueError) as exc:
            m.reward_note = str(exc)
        except Exception as exc:  # a contract revert (web3), e.g. claimed already
            m.reward_note = f"claim failed: {type(exc).__name__}: {exc}"

    list(fed.ex.map(claim, members))
    paid = 0
    for m in members:
        if m.reward_wei is None:
            log(f"  {m.name:9s} {m.role:9s} {m.reward_note}")
            continue
        paid += m.reward_wei
        log(
            f"  {m.name:9s} {m.role:9s} paid {m.reward_wei} wei"
            f" ({m.reward_wei / ETH:.4f} ETH) to its staker {m.mps.l1.address}"
        )
    log(f"  total paid: {paid} wei ({paid / ETH:.4f} ETH)")
    for m in members:
        if m.honest or m.reward_wei is None:
            continue
        sent = [t for t in m.trust if t is not None]
        unused = sum(1 for t in sent if t == 0.0)
        log(
            f"  {m.name} ({m.role}) was paid although it cheated: not caught, and the"
            f" requester's reference gave it no weight in {unused} of the {len(sent)} epochs it"
            " sent (its model harm is gone, its pay is not: docs/protocol.md, the open gap)"
        )
    return paid


def _refund(fed: Federation) -> int:
    """The requester withdraws what its deposit held beyond the fee (wei; 0 if none is owed)."""
    l1, task_id = fed.requester.l1, fed.task_id
    owed, refunded = l1.contract("RewardManager").functions.refundOf(task_id).call()
    refund = 0
    if int(owed) and not refunded:
        refund = l1.withdraw_refund(task_id)
    log(f"  requester refund (the deposit beyond the fee): {refund} wei ({refund / ETH:.4f} ETH)")
    return refund
