// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title AdminControlled
/// @notice One admin address (an EOA on a devnet, a multisig or committee in production) that may call the
///         functions marked `onlyAdmin`, and may hand the role to another address.
/// @dev A single-step transfer keeps the deployment script simple (deploy, wire, hand over); the new admin
///      must be an address its owner controls, which the deployer checks off-chain.
abstract contract AdminControlled {
    /// @notice The caller is not the admin.
    error NotAdmin(address caller);
    /// @notice The zero address was given where an address is required.
    error ZeroAddress();

    /// @notice The admin role moved (also emitted at construction, from the zero address).
    event AdminTransferred(address indexed previousAdmin, address indexed newAdmin);

    /// @notice The address allowed to call `onlyAdmin` functions.
    address public admin;

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    constructor(address admin_) {
        if (admin_ == address(0)) revert ZeroAddress();
        admin = admin_;
        emit AdminTransferred(address(0), admin_);
    }

    /// @notice Hand the admin role to `newAdmin`.
    function transferAdmin(address newAdmin) external onlyAdmin {
        if (newAdmin == address(0)) revert ZeroAddress();
        emit AdminTransferred(admin, newAdmin);
        admin = newAdmin;
    }
}
