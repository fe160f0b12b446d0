"""The demo federation: thirteen staked clients, seven cheating, on a running dev network.

    python -m examples.demo --devnet ./devnet [--rpc URL] [--epochs N] [--out DIR] [--quick]

It needs ``mps-node dev --datadir ./devnet`` running (``bash scripts/dev.sh`` starts one and
runs this) and talks to it only through the node's JSON-RPC and the dev L1, with the SDK:

* **data and model** (:mod:`.data`): scikit-learn's bundled digits (8x8 images, no download), a
  stratified held-out quarter for the requester, the rest split over the clients non-IID (per
  class, Dirichlet(0.5) proportions); a 64-32-10 tanh MLP in torch (2,410 parameters, int8
  updates).
* **clients** (:mod:`.members`): the dev clients whose stake is ``staked`` on the L1 (a client
  slashed by an earlier run is replaced by a fresh key, staked from a fresh L1 account the admin
  funds; they are kept in ``<devnet>/demo-clients/``). Six are honest (``train_update``: 40 SGD
  steps of batch 16 from the epoch's base model); seven cheat (:mod:`.attacks`): ``signflip``
  (-4 x its honest update), ``gauss`` (Gaussian noise, 10 x the honest RMS per coordinate),
  ``labelflip`` (trains on 9 - y), and the free riders ``fr_replay`` (resends the last global
  step, read from the chain: the one provable offence, slashed on the L1), ``fr_copy``
  (updates are committed before they are revealed, so it copies another client's commitment,
  then tries to open it with that client's update and salt once revealed: refused, the digest
  binds the victim's key) and ``fr_noise`` (noise at 3 x the last global step's norm); a
  seventh, ``stealth``, sends its honest update negated at its honest norm, a sign flip the
  statistics rarely flag (the thirteenth client is a replacement key the admin stakes).
* **requester** (:mod:`.federation`): a fresh ed25519 key with the admin's L1 account; it creates
  the task (its script blob is :mod:`.data`, the model and the training the clients run), funds
  it on the L1, sends its **reference update** every epoch (the clients' training on 100 held-out
  samples of its own, committed while the clients commit: the step weighs each update by its
  cosine to it, so the stealthy flipper gets no weight; docs/protocol.md "The requester's
  reference"), and reports the accuracy of every epoch's new model on the rest of its held-out
  data.
* **rules**: ``EpochRules(f=1)``, ``min_clients`` 5. Krum needs ``min_clients > 2f + 2``, and an
  epoch closes only with ``min_clients`` updates, so ``min_clients`` must stay within the six
  honest clients (once the cheaters are barred or slashed they are all that is left): f = 1.
* **epochs** (:mod:`.chain`): an epoch has a commit and a reveal phase; each ends once every
  client that can still submit is in (a barred or slashable client is not waited for), else
  when its window (8 blocks) has passed; the node seals a block a second while a task is open,
  so a window lasts about 8 s even on an idle chain.
* **comparison** (:mod:`.baselines`): the demo also runs, locally, plain FedAvg over every update
  (the same clients and attacks, nobody excluded) and FedAvg over the honest clients alone.

Each epoch it prints the accuracy, every client's Krum score, trust (its weight under the
reference), flags and verdict. After the last
one (:mod:`.settlement`) it waits for a batch holding the whole task to finalize on the L1, prints
the verdicts (every proof checked against that batch's root), shows the slashes the node's
aggregator made (``StakingRegistry.statusOf``) and the settlement, lets every client claim (the
honest ones are paid, and so is a cheater neither caught nor slashed: it says which), and
(:mod:`.report`) writes ``<out>/demo.png`` (accuracy per epoch; Krum scores per client with the
KRUM_OUTLIER bar, flags and exclusions; each update's trust) and ``<out>/demo.json``. About
75 s for 10 epochs on two cores. :mod:`.cli` holds the command line and the run in order.
"""

from __future__ import annotations

from .cli import main, run
from .federation import Options

__all__ = ["Options", "main", "run"]
