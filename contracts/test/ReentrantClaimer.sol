// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {StakingRegistry} from "../StakingRegistry.sol";

/// @title ReentrantClaimer (test only)
/// @notice A staker contract whose receive() calls back into the contract paying it, to prove that
///         RewardManager.claim and StakingRegistry.withdrawStake cannot be re-entered. It records the
///         outcome instead of reverting, so the outer payment completes and the test can check that
///         exactly one payment happened. With `rejectPayments` set, receive() reverts instead.
contract ReentrantClaimer {
    address public target;
    bytes public reentryCall;
    bool public rejectPayments;

    bool public reentryAttempted;
    bool public reentrySucceeded;
    bytes public reentryRevertData;
    uint256 public paymentsReceived;

    error PaymentRejected();

    function stake(StakingRegistry registry, bytes32 clientKey) external payable {
        registry.stake{value: msg.value}(clientKey, new bytes(64));
    }

    function unregister(StakingRegistry registry) external {
        registry.unregister();
    }

    function withdrawStake(StakingRegistry registry, uint256 batchIndex, bytes32[] calldata siblings) external {
        registry.withdrawStake(batchIndex, siblings);
    }

    /// @notice On the next payment, call `target_` with `data` (once).
    function arm(address target_, bytes calldata data) external {
        target = target_;
        reentryCall = data;
    }

    function setRejectPayments(bool reject) external {
        rejectPayments = reject;
    }

    receive() external payable {
        if (rejectPayments) revert PaymentRejected();
        paymentsReceived += 1;
        if (target != address(0) && !reentryAttempted) {
            reentryAttempted = true;
            (bool ok, bytes memory ret) = target.call(reentryCall);
            reentrySucceeded = ok;
            reentryRevertData = ret;
        }
    }
}
