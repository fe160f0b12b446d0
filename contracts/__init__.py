"""The MPS chain's L1 contracts: Solidity sources, compiled artifacts, deployment glue."""
