// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Treasury} from "./Treasury.sol";

/// @title SlashTreasury
/// @notice Receives the stakes the StakingRegistry slashes.
contract SlashTreasury is Treasury {
    constructor(address admin_) Treasury(admin_) {}
}
