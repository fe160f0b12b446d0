// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AdminControlled} from "./AdminControlled.sol";
import {ReentrancyGuard} from "./ReentrancyGuard.sol";

/// @title Treasury
/// @notice Holds ether sent to it and lets the admin pay it out. The two treasuries are separate
///         contracts so that slashed stakes and protocol fees are accounted for apart.
abstract contract Treasury is AdminControlled, ReentrancyGuard {
    error InsufficientBalance(uint256 requested, uint256 available);
    error TransferFailed(address to, uint256 amount);

    event Received(address indexed from, uint256 amount);
    event Withdrawal(address indexed to, uint256 amount);

    constructor(address admin_) AdminControlled(admin_) {}

    /// @notice Accept ether from anyone (slashed stakes, base fees, protocol shares).
    receive() external payable {
        emit Received(msg.sender, msg.value);
    }

    /// @notice Pay `amount` wei to `to`.
    function withdraw(address payable to, uint256 amount) external onlyAdmin nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        uint256 available = address(this).balance;
        if (amount > available) revert InsufficientBalance(amount, available);
        emit Withdrawal(to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
