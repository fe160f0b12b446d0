"""L1 settlement: the follower, the batch poster, the aggregator and the verifier.

Everything here but :mod:`.deposits` (the events as the rollup carries them,
which the sequencer imports) talks to an Ethereum JSON-RPC endpoint through
web3.py; the rollup itself (stf/) never does. Web3 calls block, so the asyncio services run
them on worker threads: block production never waits for the L1.
"""
