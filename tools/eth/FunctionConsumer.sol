// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// A request queue answered off-chain, with the storage keys and the calls of Phala's
/// `PhatRollupAnchor` (`phat-offchain-rollup`), written here from its documented interface so
/// that a Phat Function answers it exactly as it answers Phala's:
/// - the queue lives in a key-value store: `q/_head`, `q/_tail` (each `abi.encode(uint32)`,
///   an empty value reading 0) and `"q/" ‖ abi.encode(uint256 index)` for each request;
/// - `rollupU256CondEq(condKeys, condValues, updateKeys, updateValues, actions)`, callable by
///   an attestor only, checks each condition (the stored value, as a number, equals the given
///   one), writes the updates, then runs the actions: `0x00 ‖ data` delivers a reply,
///   `0x01 ‖ abi.encode(uint256 index)` pops the queue up to `index`. A condition that does not
///   hold reverts the whole call, so a reply to a request already answered never lands.
abstract contract RollupAnchor {
    bytes private constant HEAD = "q/_head";
    bytes private constant TAIL = "q/_tail";

    mapping(bytes => bytes) private store;
    mapping(address => bool) public isAttestor;
    address public immutable owner;

    event MessageQueued(uint256 idx, bytes data);
    event MessageProcessedTo(uint256 idx);

    error NotAttestor();
    error NotOwner();
    error ConditionFailed(bytes key);
    error BadLengths();
    error BadValue();
    error BadAction();

    constructor() {
        owner = msg.sender;
    }

    /// Grants or revokes the attestor role (a Phat Function's `attestor`).
    function setAttestor(address attestor, bool allowed) external {
        if (msg.sender != owner) revert NotOwner();
        isAttestor[attestor] = allowed;
    }

    /// A stored value (what the function reads the queue with).
    function getStorage(bytes memory key) public view returns (bytes memory) {
        return store[key];
    }

    function number(bytes memory value) private pure returns (uint256) {
        if (value.length == 0) return 0;
        if (value.length != 32) revert BadValue();
        return abi.decode(value, (uint256));
    }

    function queueKey(uint256 index) private pure returns (bytes memory) {
        return abi.encodePacked("q/", abi.encode(index));
    }

    /// The first request not answered yet.
    function queueHead() public view returns (uint256) {
        return number(store[HEAD]);
    }

    /// The index the next request gets.
    function queueTail() public view returns (uint256) {
        return number(store[TAIL]);
    }

    /// Appends `data` to the queue; returns its index.
    function pushMessage(bytes memory data) internal returns (uint256 index) {
        index = queueTail();
        store[queueKey(index)] = data;
        store[TAIL] = abi.encode(index + 1);
        emit MessageQueued(index, data);
    }

    /// Applies an attestor's answer if every condition holds (see the contract's docs).
    function rollupU256CondEq(
        bytes[] calldata condKeys,
        bytes[] calldata condValues,
        bytes[] calldata updateKeys,
        bytes[] calldata updateValues,
        bytes[] calldata actions
    ) external returns (bool) {
        if (!isAttestor[msg.sender]) revert NotAttestor();
        if (condKeys.length != condValues.length || updateKeys.length != updateValues.length) {
            revert BadLengths();
        }
        for (uint256 i = 0; i < condKeys.length; i++) {
            if (number(store[condKeys[i]]) != number(condValues[i])) revert ConditionFailed(condKeys[i]);
        }
        for (uint256 i = 0; i < updateKeys.length; i++) {
            store[updateKeys[i]] = updateValues[i];
        }
        for (uint256 i = 0; i < actions.length; i++) {
            bytes calldata action = actions[i];
            if (action.length == 0) revert BadAction();
            bytes memory body = action[1:];
            if (action[0] == 0x00) {
                onMessageReceived(body);
            } else if (action[0] == 0x01) {
                uint256 to = number(body);
                uint256 head = queueHead();
                if (to < head || to > queueTail()) revert BadAction();
                for (uint256 k = head; k < to; k++) {
                    delete store[queueKey(k)];
                }
                store[HEAD] = abi.encode(to);
                emit MessageProcessedTo(to);
            } else {
                revert BadAction();
            }
        }
        return true;
    }

    /// A reply the function sent.
    function onMessageReceived(bytes memory data) internal virtual;
}

/// The consumer of the Phat Functions guide and tests: asks for a pair's price; the function
/// answers `abi.encode(uint256 kind, uint256 id, uint256 value)` (kind 0: a price with 8
/// decimals; kind 1: an error code), as Phala's starter kit does.
contract FunctionConsumer is RollupAnchor {
    uint256 public nextRequest = 1;
    uint256 public replies;
    mapping(uint256 => string) public pairs;
    mapping(uint256 => uint256) public prices;
    mapping(uint256 => uint256) public errorCodes;
    mapping(uint256 => uint256) public answersTo;

    event PriceRequested(uint256 id, string pair);
    event ResponseReceived(uint256 id, string pair, uint256 price);
    event ErrorReceived(uint256 id, string pair, uint256 code);

    /// Queues a request for `pair`'s price.
    function request(string calldata pair) external returns (uint256 id) {
        id = nextRequest++;
        pairs[id] = pair;
        pushMessage(abi.encode(id, pair));
        emit PriceRequested(id, pair);
    }

    /// Queues raw bytes (a malformed request, for tests).
    function requestRaw(bytes calldata data) external {
        pushMessage(data);
    }

    function onMessageReceived(bytes memory data) internal override {
        (uint256 kind, uint256 id, uint256 value) = abi.decode(data, (uint256, uint256, uint256));
        replies++;
        answersTo[id]++;
        if (kind == 0) {
            prices[id] = value;
            emit ResponseReceived(id, pairs[id], value);
        } else {
            errorCodes[id] = value;
            emit ErrorReceived(id, pairs[id], value);
        }
    }
}
