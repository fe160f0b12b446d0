// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AdminControlled} from "./AdminControlled.sol";
import {ReentrancyGuard} from "./ReentrancyGuard.sol";

/// @title StakingRegistry
/// @notice Clients lock a fixed stake against their rollup key (the 32-byte ed25519 public key that signs
///         their MPS-chain transactions). The sequencer reads `Staked` / `UnbondingStarted` / `Withdrawn` /
///         `Slashed` to know who may train; the SlashingManager takes the stake of a key the rollup proved
///         dishonest; the RewardManager pays rewards to `stakerOf(key)`.
/// @dev Binding rules, chosen so that one stake is one identity on both chains:
///      - an address binds one key, for good (`keyOf` never changes once set);
///      - a key binds one address, for good (`stakerOf` stays set after withdrawal and after a slash,
///        because it is where rewards earned before that are paid);
///      - a slashed key is burned: it can never be staked again, by anyone;
///      - a withdrawn key may be staked again by the same address.
///      Unbonding lasts UNBONDING_BLOCKS L1 blocks so that evidence of misbehaviour shortly before
///      `unregister` can still finalize on L1 and slash the stake (a key is slashable while unbonding).
contract StakingRegistry is AdminControlled, ReentrancyGuard {
    /// @notice Lifecycle of a key. Values are part of the interface (`statusOf` returns them as uint8).
    enum Status {
        None, // 0: never staked
        Staked, // 1
        Unbonding, // 2
        Slashed, // 3: burned for good
        Withdrawn // 4: may be staked again by its staker
    }

    /// @dev One storage slot for the staker, status and release block, one for the amount.
    struct StakeInfo {
        address staker;
        Status status;
        uint64 releaseBlock;
        uint256 amount;
    }

    /// @notice The exact stake, in wei.
    uint256 public immutable STAKE_AMOUNT;
    /// @notice L1 blocks between `unregister` and the earliest `withdrawStake`.
    uint256 public immutable UNBONDING_BLOCKS;

    /// @notice The only caller of `slash` (the SlashingManager).
    address public slasher;
    /// @notice Where slashed stakes go (the SlashTreasury).
    address public slashTreasury;

    mapping(bytes32 clientKey => StakeInfo) private _stakes;
    /// @notice The key an address has bound (zero if none).
    mapping(address staker => bytes32 clientKey) public keyOf;

    error WrongStakeAmount(uint256 sent, uint256 required);
    error ZeroKey();
    /// @notice The caller already bound a different key.
    error StakerHasOtherKey(bytes32 boundKey);
    /// @notice The key is bound to another address.
    error KeyTaken(bytes32 clientKey, address staker);
    /// @notice The key is staked or unbonding already.
    error AlreadyStaked(bytes32 clientKey);
    /// @notice The key was slashed: it is burned for good.
    error KeyBurned(bytes32 clientKey);
    /// @notice The caller's key is not in the status the call needs.
    error WrongStatus(bytes32 clientKey, uint8 status);
    /// @notice Unbonding has not finished.
    error StillUnbonding(uint256 releaseBlock, uint256 currentBlock);
    error NotSlasher(address caller);
    error SlashTreasuryNotSet();
    error TransferFailed(address to, uint256 amount);

    event Staked(address indexed staker, bytes32 indexed clientKey, uint256 amount);
    event UnbondingStarted(address indexed staker, bytes32 indexed clientKey, uint256 releaseBlock);
    event Withdrawn(address indexed staker, bytes32 indexed clientKey, uint256 amount);
    event Slashed(address indexed staker, bytes32 indexed clientKey, uint256 amount, bytes32 offence);
    event SlasherSet(address indexed slasher);
    event SlashTreasurySet(address indexed slashTreasury);

    modifier onlySlasher() {
        if (msg.sender != slasher) revert NotSlasher(msg.sender);
        _;
    }

    constructor(uint256 stakeAmount, uint256 unbondingBlocks, address admin_) AdminControlled(admin_) {
        STAKE_AMOUNT = stakeAmount;
        UNBONDING_BLOCKS = unbondingBlocks;
    }

    // ------------------------------------------------------------------ staker

    /// @notice Lock exactly STAKE_AMOUNT against `clientKey`.
    function stake(bytes32 clientKey) external payable {
        if (msg.value != STAKE_AMOUNT) revert WrongStakeAmount(msg.value, STAKE_AMOUNT);
        if (clientKey == bytes32(0)) revert ZeroKey();
        bytes32 bound = keyOf[msg.sender];
        if (bound != bytes32(0) && bound != clientKey) revert StakerHasOtherKey(bound);
        StakeInfo storage s = _stakes[clientKey];
        if (s.staker != address(0) && s.staker != msg.sender) revert KeyTaken(clientKey, s.staker);
        if (s.status == Status.Slashed) revert KeyBurned(clientKey);
        if (s.status == Status.Staked || s.status == Status.Unbonding) revert AlreadyStaked(clientKey);

        keyOf[msg.sender] = clientKey;
        s.staker = msg.sender;
        s.status = Status.Staked;
        s.releaseBlock = 0;
        s.amount = msg.value;
        emit Staked(msg.sender, clientKey, msg.value);
    }

    /// @notice Start unbonding the caller's stake; it can be withdrawn UNBONDING_BLOCKS later and stays
    ///         slashable until then.
    function unregister() external {
        bytes32 clientKey = keyOf[msg.sender];
        StakeInfo storage s = _stakes[clientKey];
        if (s.status != Status.Staked) revert WrongStatus(clientKey, uint8(s.status));
        uint256 releaseBlock = block.number + UNBONDING_BLOCKS;
        s.status = Status.Unbonding;
        s.releaseBlock = uint64(releaseBlock);
        emit UnbondingStarted(msg.sender, clientKey, releaseBlock);
    }

    /// @notice Pay the caller's stake back once unbonding is over.
    function withdrawStake() external nonReentrant {
        bytes32 clientKey = keyOf[msg.sender];
        StakeInfo storage s = _stakes[clientKey];
        if (s.status != Status.Unbonding) revert WrongStatus(clientKey, uint8(s.status));
        if (block.number < s.releaseBlock) revert StillUnbonding(s.releaseBlock, block.number);

        uint256 amount = s.amount;
        s.amount = 0;
        s.status = Status.Withdrawn;
        emit Withdrawn(msg.sender, clientKey, amount);

        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    // ------------------------------------------------------------------ slashing

    /// @notice Burn `clientKey` and move its stake to the SlashTreasury. Only the SlashingManager calls
    ///         this, after checking a rollup proof; `offence` identifies the evidence for the record.
    /// @return amount the stake moved.
    function slash(bytes32 clientKey, bytes32 offence) external onlySlasher nonReentrant returns (uint256 amount) {
        StakeInfo storage s = _stakes[clientKey];
        if (s.status != Status.Staked && s.status != Status.Unbonding) {
            revert WrongStatus(clientKey, uint8(s.status));
        }
        address treasury = slashTreasury;
        if (treasury == address(0)) revert SlashTreasuryNotSet();

        amount = s.amount;
        s.amount = 0;
        s.status = Status.Slashed;
        emit Slashed(s.staker, clientKey, amount, offence);

        (bool ok,) = payable(treasury).call{value: amount}("");
        if (!ok) revert TransferFailed(treasury, amount);
    }

    // ------------------------------------------------------------------ admin

    /// @notice Set the contract allowed to slash (the SlashingManager).
    function setSlasher(address slasher_) external onlyAdmin {
        if (slasher_ == address(0)) revert ZeroAddress();
        slasher = slasher_;
        emit SlasherSet(slasher_);
    }

    /// @notice Set where slashed stakes go (the SlashTreasury).
    function setSlashTreasury(address slashTreasury_) external onlyAdmin {
        if (slashTreasury_ == address(0)) revert ZeroAddress();
        slashTreasury = slashTreasury_;
        emit SlashTreasurySet(slashTreasury_);
    }

    // ------------------------------------------------------------------ views

    /// @notice The address that staked `clientKey` (stays set after withdrawal and slashing).
    function stakerOf(bytes32 clientKey) external view returns (address) {
        return _stakes[clientKey].staker;
    }

    /// @notice 0 none, 1 staked, 2 unbonding, 3 slashed, 4 withdrawn.
    function statusOf(bytes32 clientKey) external view returns (uint8) {
        return uint8(_stakes[clientKey].status);
    }

    /// @notice Wei held for `clientKey` (zero once withdrawn or slashed).
    function stakeOf(bytes32 clientKey) external view returns (uint256) {
        return _stakes[clientKey].amount;
    }

    /// @notice First block at which an unbonding stake may be withdrawn (zero unless unbonding began).
    function releaseBlockOf(bytes32 clientKey) external view returns (uint256) {
        return _stakes[clientKey].releaseBlock;
    }
}
