// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {SparseMerkle} from "../SparseMerkle.sol";

/// @title SparseMerkleHarness (test only)
/// @notice Exposes the SparseMerkle library so tests can check it against stf.smt directly.
contract SparseMerkleHarness {
    function verify(bytes32 root, bytes calldata key, bytes calldata value, bytes32[] calldata siblings)
        external
        view
        returns (bool)
    {
        return SparseMerkle.verify(root, key, value, siblings);
    }

    function computeRoot(bytes32 path, bytes32 leaf, bytes32[] calldata siblings) external view returns (bytes32) {
        return SparseMerkle.computeRoot(path, leaf, siblings);
    }
}
