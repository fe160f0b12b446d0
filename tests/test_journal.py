"""The mempool journal loses only what damage touches (issue 13): one flipped byte used to drop
every later acknowledged transaction (91 of 100)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.journal import MAGIC, TxJournal

RAWS = [bytes([i]) * (50 + i) + MAGIC + bytes([i]) for i in range(100)]  # stray magics inside


def written(path: Path, raws: list[bytes]) -> TxJournal:
    j = TxJournal(path)
    for raw in raws:
        j.append(raw)
    return j


def test_an_intact_journal_reads_back_exactly(tmp_path: Path) -> None:
    j = written(tmp_path / "j", RAWS)
    assert j.read_all() == RAWS and j.damage.spans == ()
    j.rewrite(RAWS[:3])
    assert TxJournal(tmp_path / "j").read_all() == RAWS[:3]


def record_offsets(raws: list[bytes]) -> list[int]:
    offsets, pos = [], 0
    for raw in raws:
        offsets.append(pos)
        pos += 12 + len(raw)
    return offsets


@pytest.mark.parametrize("where", ["magic", "length", "crc", "body"])
def test_a_flipped_byte_loses_that_record_only(tmp_path: Path, where: str) -> None:
    path = tmp_path / "j"
    written(path, RAWS)
    data = bytearray(path.read_bytes())
    at = record_offsets(RAWS)[9] + {"magic": 1, "length": 6, "crc": 10, "body": 30}[where]
    data[at] ^= 0x40
    path.write_bytes(bytes(data))
    j = TxJournal(path)
    assert j.read_all() == RAWS[:9] + RAWS[10:]
    assert len(j.damage.spans) == 1 and j.damage.spans[0][0] == record_offsets(RAWS)[9]


def test_a_torn_tail_is_reported_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "j"
    written(path, RAWS[:5])
    with open(path, "ab") as f:
        f.write(MAGIC + b"\x00\x00\x01")  # a kill mid-write
    j = TxJournal(path)
    assert j.read_all() == RAWS[:5]
    assert j.damage.spans == ((os.path.getsize(path) - 7, 7),)


@settings(max_examples=50, deadline=None)
@given(flips=st.lists(st.integers(0, 10**6), min_size=1, max_size=5))
def test_random_damage_keeps_every_untouched_record(tmp_path_factory, flips: list[int]) -> None:
    path = tmp_path_factory.mktemp("j") / "j"
    written(path, RAWS)
    data = bytearray(path.read_bytes())
    offsets = [*record_offsets(RAWS), len(data)]
    hit = set()
    for at in {f % len(data) for f in flips}:  # each damaged byte once
        data[at] ^= 0xFF
        hit.update(i for i in range(len(RAWS)) if offsets[i] <= at < offsets[i + 1])
    path.write_bytes(bytes(data))
    got = TxJournal(path).read_all()
    assert [r for i, r in enumerate(RAWS) if i not in hit] == [r for r in got if r in RAWS]
    assert all(r in RAWS for r in got)


def test_a_write_after_close_is_refused_not_sent_to_a_reused_descriptor(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Red team: close() left the number set, and a stream's write still queued at shutdown
    went to whichever file the OS gave that number next."""
    from node.journal import JournalClosed, TxJournal

    j = TxJournal(tmp_path / "j")
    j.append(b"kept")
    j.close()
    victim = tmp_path / "victim"
    fd = os.open(victim, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(JournalClosed):
            j.append_many([b"late"])
        with pytest.raises(JournalClosed):
            j.rewrite([b"late"])
    finally:
        os.close(fd)
    assert victim.read_bytes() == b""
    j.close()  # twice is harmless
    assert TxJournal(tmp_path / "j").read_all() == [b"kept"]
