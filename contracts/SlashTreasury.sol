// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title SlashTreasury
/// @notice Receives the stakes the StakingRegistry slashes, and keeps them for good: nothing can
///         leave this contract, so a slashed stake is burned.
/// @dev Why a burn and not an admin's withdrawal: the admin decides fraud challenges, and a root it
///      let through is what slash proofs are checked against. Whoever could take slashed stakes
///      would profit from the slashes it rules on (issue 12). Paying them by rule to the honest
///      clients of the task is a later choice; until then no party gains from a slash.
// slither-disable-next-line locked-ether (the point: a slashed stake is burned)
contract SlashTreasury {
    event Received(address indexed from, uint256 amount);

    /// @notice Accept slashed stakes (and any ether sent here: it stays).
    receive() external payable {
        emit Received(msg.sender, msg.value);
    }
}
