// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title ReentrancyGuard
/// @notice Rejects a call into a `nonReentrant` function while another one of the same contract is running.
/// @dev The flag lives in transient storage (EIP-1153, evmVersion cancun): it costs ~200 gas instead of two
///      storage writes and is cleared by the EVM at the end of the transaction even if a frame reverts.
///      Every function that sends ether also follows checks-effects-interactions; the guard is the second line.
abstract contract ReentrancyGuard {
    /// @notice A `nonReentrant` function was entered again before the first call returned.
    error Reentrancy();

    bool private transient _entered;

    modifier nonReentrant() {
        if (_entered) revert Reentrancy();
        _entered = true;
        _;
        _entered = false;
    }
}
