// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Treasury} from "./Treasury.sol";

/// @title RewardTreasury
/// @notice Receives the RewardManager's base fees and protocol shares.
contract RewardTreasury is Treasury {
    constructor(address admin_) Treasury(admin_) {}
}
