"""Every JSON-RPC method, fed arbitrary parameters: an answer or a stable error, never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpc_fixtures import start_node

from rpc.server import DISPATCHER_KEY
from stf.errors import INTERNAL_ERROR, Code

STANDARD = {-32700, -32600, -32601, -32602}
STABLE = STANDARD | {int(c) for c in Code}

leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "latest",
            "safe",
            "finalized",
            "earliest",
            "pending",
            "0x",
            "0x00",
            "0xzz",
            "0x" + "ab" * 20,
            "0x" + "ab" * 32,
            "0x" + "00" * 33,
            "1",
        ]
    )
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def hexed(n: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=n, max_size=n).map(lambda b: "0x" + b.hex())


# well-typed values per converter, so that calls get past parameter checks into the methods
TYPED: dict[str, st.SearchStrategy[Any]] = {
    "to_hash": hexed(32),
    "to_bytes": st.binary(max_size=300).map(lambda b: "0x" + b.hex()),
    "to_uint": st.integers(0, 20) | st.integers(0, 2**64 - 1),
    "to_block_tag": st.sampled_from(["latest", "safe", "finalized", "earliest"])
    | st.integers(0, 5),
    "to_bool": st.booleans(),
    "to_str": st.text(max_size=12),
}


@st.composite
def calls(draw: st.DrawFn, methods: list[str], params_of: dict[str, list[Any]]) -> dict[str, Any]:
    method = draw(st.sampled_from(methods))
    names = [p.name for p in params_of[method]]
    keys = st.sampled_from(names) if names else st.text(max_size=6)
    typed = st.tuples(*[TYPED.get(p.convert.__name__, values) for p in params_of[method]]).map(list)
    params = draw(
        typed
        | typed
        | st.none()
        | st.lists(values, max_size=4)
        | st.dictionaries(keys | st.text(max_size=6), values, max_size=3)
        | values
    )
    call: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        call["params"] = params
    return call


async def test_arbitrary_params_get_an_answer_or_a_stable_error(tmp_path: Any) -> None:
    async with start_node(tmp_path / "n") as h:
        dispatcher = h.client.app[DISPATCHER_KEY]
        methods = sorted(dispatcher.methods)
        params_of = {m: list(dispatcher.methods[m].params) for m in methods}
        seen_errors: set[int] = set()
        answered = 0

        # hypothesis draws the calls (it cannot drive a coroutine), the loop then sends them
        drawn: list[dict[str, Any]] = []

        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
        @given(calls(methods, params_of))
        def collect(call: dict[str, Any]) -> None:
            drawn.append(call)

        collect()
        for call in drawn:
            resp = await h.client.post("/", json=call)
            assert resp.status == 200, (call, resp.status)
            body = await resp.json()
            if "error" in body:
                err = body["error"]
                assert err["code"] != INTERNAL_ERROR, (call, err)
                assert err["code"] in STABLE, (call, err)
                assert isinstance(err["message"], str) and err["message"], (call, err)
                seen_errors.add(err["code"])
            else:
                assert "result" in body, (call, body)
                answered += 1
        # the generator reaches the parameter checks, the methods' own errors, and answers
        assert -32602 in seen_errors and seen_errors - STANDARD, seen_errors
        assert answered >= 20, answered
        assert await h.result("mps_blockNumber") >= 0  # and the node still serves
