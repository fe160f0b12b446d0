"""The MPS chain client SDK: keys, transactions, RPC clients, the L1, proofs, training.

* :class:`MPSClient` (``client.py``): a client's flow (stake, join, submit, wait, slashing
  state checked against the L1, claim) and a requester's (create and fund a task, report
  accuracy); :class:`AsyncMPSClient` (``async_client.py``): the same under asyncio. Both are
  faces of one core (``core.py``, its steps in ``flow.py``); :class:`SlashingState` and its
  proof checks (``slashing.py``), reward proofs (``rewards.py``); reading the node's answers,
  ``as_bytes`` and ``params_of`` (``answers.py``).
* :class:`L1Config`, :class:`L1` (``l1.py``): the contracts, from one L1 account.
* ``train.py``: torch modules as task vectors, local training, a Flower-style ``Client``
  (torch imported on use); ``runner.py``: ``run_client`` drives one through a task.
* ``fl.py``: the signed federated-learning transactions; ``proofs.py``: local proof checks;
  ``errors.py``: every exception, under one root :class:`ClientError` (one class per node
  error code); ``cli.py``: ``mps-client``. The JSON-RPC transport (:class:`RPCClient`,
  :class:`AsyncRPCClient`) is :mod:`mps_common.transport`, shared with the node's tools.
"""

from mps_common.transport import AsyncRPCClient, RPCClient

from .async_client import AsyncMPSClient
from .client import MPSClient
from .errors import (
    ClientError,
    InvalidArgument,
    L1NotConfigured,
    NotOnL1Yet,
    RPCError,
    SDKError,
    TransportError,
    WaitTimeout,
)
from .keys import KeyFileError, Keypair
from .l1 import L1, L1Config
from .proofs import ProofError
from .slashing import SlashingState
from .tx import put_blob, put_record

__all__ = [
    "L1",
    "AsyncMPSClient",
    "AsyncRPCClient",
    "ClientError",
    "InvalidArgument",
    "KeyFileError",
    "Keypair",
    "L1Config",
    "L1NotConfigured",
    "MPSClient",
    "NotOnL1Yet",
    "ProofError",
    "RPCClient",
    "RPCError",
    "SDKError",
    "SlashingState",
    "TransportError",
    "WaitTimeout",
    "put_blob",
    "put_record",
]
