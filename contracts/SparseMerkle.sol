// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title SparseMerkle
/// @notice Inclusion proofs for the rollup's compact sparse Merkle tree (stf/smt.py), the same fold as
///         `stf.smt.verify_proof` for a present key.
/// @dev Tree layout, all hashes sha256 (the 0x02 precompile):
///        path     = sha256(key)                     the 256-bit position, most significant bit first
///        leaf     = sha256(0x00 || path || sha256(value))
///        internal = sha256(0x01 || left || right)
///      A subtree holding one key is stored as that leaf at the depth where its path first diverges from the
///      others, so the proof (`siblings`, root first) is about log2(n) long and the leaf sits at depth
///      `siblings.length`. The fold reads the path bits of the leaf's own key, so a proof cannot move a
///      leaf to another position, and the leaf hash binds both the path and the value.
library SparseMerkle {
    /// @notice The longest proof a 256-bit path allows.
    uint256 internal constant MAX_DEPTH = 256;

    /// @notice True when `key` holds exactly `value` in the tree whose root is `root`.
    function verify(bytes32 root, bytes memory key, bytes memory value, bytes32[] calldata siblings)
        internal
        view
        returns (bool)
    {
        if (siblings.length > MAX_DEPTH) return false;
        bytes32 path = sha256(key);
        return computeRoot(path, _hash(0x00, path, sha256(value)), siblings) == root;
    }

    /// @notice Fold `leaf` (the leaf hash at `path`) up through `siblings` (root first) to a root.
    function computeRoot(bytes32 path, bytes32 leaf, bytes32[] calldata siblings)
        internal
        view
        returns (bytes32 h)
    {
        h = leaf;
        for (uint256 d = siblings.length; d > 0;) {
            unchecked {
                --d;
            }
            // bit d of the path, bit 0 being the most significant bit of path[0]
            if ((uint256(path) >> (255 - d)) & 1 == 1) {
                h = _hash(0x01, siblings[d], h);
            } else {
                h = _hash(0x01, h, siblings[d]);
            }
        }
    }

    /// @dev sha256(tag || a || b) through the precompile, in scratch memory past the free memory pointer
    ///      (never allocated, so a deep proof does not grow memory the way abi.encodePacked in a loop would).
    function _hash(bytes1 tag, bytes32 a, bytes32 b) private view returns (bytes32 out) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore8(ptr, shr(248, tag))
            mstore(add(ptr, 1), a)
            mstore(add(ptr, 33), b)
            if iszero(staticcall(gas(), 0x02, ptr, 65, 0x00, 0x20)) { revert(0, 0) }
            out := mload(0x00)
        }
    }
}
