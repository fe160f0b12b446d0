"""The manifest's byte-layout pre-check changes no verdict, and makes junk cheap to refuse.

A create_task naming a 4 MB uploaded blob of msgpack small integers made every verifier parse
four million objects (1.3 s) to learn it was not a manifest (a red team's). ``Manifest.decode``
now reads the headers first; these properties hold it to the full decode it guards.
"""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from stf import encoding
from stf.encoding import EncodingError
from stf.fl.chunks import MANIFEST_TAG, MAX_CHUNKS, Manifest, _shaped_like_a_manifest


def full_verdict(raw: bytes) -> bool:
    """Whether the decode without the pre-check would accept ``raw``."""
    try:
        v = encoding.decode(raw)
    except EncodingError:
        return False
    return (
        isinstance(v, list)
        and len(v) == 4
        and v[0] == MANIFEST_TAG
        and isinstance(v[1], int)
        and isinstance(v[2], int)
        and v[1] >= 0
        and v[2] >= 0
        and isinstance(v[3], list)
        and len(v[3]) <= MAX_CHUNKS
        and all(isinstance(h, bytes) and len(h) == 32 for h in v[3])
    )


manifests = st.builds(
    lambda total, chunk, k, seed: Manifest(
        total, chunk, bytes((seed + i) % 256 for i in range(32 * k))
    ),
    st.integers(1, 2**64 - 1),
    st.integers(1, 2**64 - 1),
    st.integers(1, 40),
    st.integers(0, 255),
)


@given(manifests)
def test_every_manifest_has_the_shape(m: Manifest) -> None:
    assert _shaped_like_a_manifest(m.encode())


@settings(max_examples=400)
@given(manifests, st.integers(0, 10**6), st.integers(0, 255), st.booleans())
def test_a_mutated_manifest_gets_the_full_decodes_verdict(
    m: Manifest, where: int, byte: int, cut: bool
) -> None:
    raw = bytearray(m.encode())
    if cut:
        del raw[where % len(raw) :]
    else:
        raw[where % len(raw)] = byte
    # the pre-check may refuse only what the full decode refuses too
    if full_verdict(bytes(raw)):
        assert _shaped_like_a_manifest(bytes(raw))


@given(
    st.recursive(
        st.integers(0, 2**64 - 1) | st.binary(max_size=40) | st.just(MANIFEST_TAG),
        lambda xs: st.lists(xs, max_size=6),
        max_leaves=30,
    )
)
def test_any_value_gets_the_full_decodes_verdict(value: object) -> None:
    raw = msgpack.packb(value, use_bin_type=True)
    if full_verdict(raw):
        assert _shaped_like_a_manifest(raw)
    if not _shaped_like_a_manifest(raw):
        try:
            Manifest.decode(raw)
        except EncodingError:
            return
        raise AssertionError("decoded what the pre-check refused")


def test_junk_that_is_no_manifest_is_refused_unparsed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import stf.fl.chunks as chunks

    parsed: list[int] = []
    real = chunks.encoding.decode
    monkeypatch.setattr(
        chunks.encoding, "decode", lambda raw, **kw: parsed.append(len(raw)) or real(raw, **kw)
    )
    for junk in (
        msgpack.packb([0] * 4_000_000),
        msgpack.packb([MANIFEST_TAG, 1, 1, [[0] * 4000] * 34]),
        msgpack.packb([MANIFEST_TAG, 1, 1, [0] * 139_200]),
    ):
        try:
            Manifest.decode(junk)
        except EncodingError as exc:
            assert "not a chunk manifest" in str(exc)
        else:
            raise AssertionError("junk decoded")
    assert parsed == []  # refused from its headers: no object was built
    m = Manifest(10, 4, bytes(96))
    assert Manifest.decode(m.encode()) == m and parsed == [len(m.encode())]
