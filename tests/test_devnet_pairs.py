"""The dev network pairs dev client *i* with the L1 account that staked it (issue 14): file
names sorted as text put ``client10`` before ``client2``, and every client from 2 on was staked
by another client's account (its rewards paid there, ``--account client4 unregister`` unbonding
dev client 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.transact import contract
from mps_common.keyfile import Keypair
from node.l1.chain import load_account
from node.l1.devnet import dev_clients, start_dev_l1
from stf.hashing import sha256

pytestmark = pytest.mark.slow

N = 12  # node.cli.DEV_CLIENTS


def write_dev_keys(keys_dir: Path, n: int) -> list[Keypair]:
    keys = [Keypair.generate() for _ in range(n)]
    for i, kp in enumerate(keys):
        kp.save(keys_dir / f"client{i}.key")
    return keys


def test_dev_clients_come_in_the_order_of_their_number(tmp_path: Path) -> None:
    keys = write_dev_keys(tmp_path, N)
    assert [k.public_key for k in dev_clients(tmp_path)] == [k.public_key for k in keys]
    (tmp_path / "client5.key").unlink()
    with pytest.raises(ValueError, match="not numbered"):
        dev_clients(tmp_path)


def test_every_dev_client_is_staked_by_its_own_l1_account(tmp_path: Path) -> None:
    keys = write_dev_keys(tmp_path / "dev-clients", N)
    dev = start_dev_l1(tmp_path, sha256(b"root"), dev_clients(tmp_path / "dev-clients"), 4242)
    try:
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(dev.url))
        registry = contract(w3, "StakingRegistry", dev.addresses["StakingRegistry"]).functions
        for i, kp in enumerate(keys):
            account = load_account(tmp_path / "l1" / f"client{i}.key")
            assert registry.stakerOf(kp.public_key).call() == account.address, i
            assert registry.keyOf(account.address).call() == kp.public_key, i
    finally:
        dev.stop()
