"""The MPS chain client SDK: keys, transactions, RPC clients, the L1, proofs, training.

* :class:`MPSClient` (``client.py``): a client's flow (stake, join, submit, wait, slashing
  state checked against the L1, claim) and a requester's (create and fund a task, report
  accuracy); :class:`AsyncMPSClient` (``async_client.py``) for the read and submit side under
  asyncio; :class:`SlashingState` and its proof checks (``slashing.py``); reading the node's
  answers, ``as_bytes`` and ``params_of`` (``answers.py``).
* :class:`L1Config`, :class:`L1` (``l1.py``): the contracts, from one L1 account.
* ``train.py``: torch modules as task vectors, local training, a Flower-style ``Client``
  and ``run_client`` (torch imported on use).
* ``fl.py``: the signed federated-learning transactions; ``proofs.py``: local proof checks;
  ``errors.py``: one exception per node error code; ``cli.py``: ``mps-client``.
"""

from .async_client import AsyncMPSClient
from .client import MPSClient
from .errors import L1NotConfigured, NotOnL1Yet, RPCError, SDKError, TransportError
from .keys import KeyFileError, Keypair
from .l1 import L1, L1Config
from .proofs import ProofError
from .rpc import AsyncRPCClient, RPCClient
from .slashing import SlashingState
from .tx import put_blob, put_record

__all__ = [
    "L1",
    "AsyncMPSClient",
    "AsyncRPCClient",
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
    "put_blob",
    "put_record",
]
