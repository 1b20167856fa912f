// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// The on-chain half of phat's oracle example (docs/triggers.md): anyone asks for a price with
/// `request`, which emits `PriceRequested`; the phat contract `price-feed`, subscribed to that
/// event, answers each request once with `fulfill`, and pushes its pair's latest price with
/// `update`. Only the oracle address (the phat contract's own Ethereum key) may answer.
contract PriceConsumer {
    /// The phat contract's Ethereum address: the only sender of answers.
    address public immutable oracle;
    /// The id of the last request (ids start at 1).
    uint256 public lastId;
    /// The pair each request asked for.
    mapping(uint256 => string) public pairs;
    /// The answer of each request (8 decimals), once fulfilled.
    mapping(uint256 => uint256) public prices;
    /// Whether a request has been answered.
    mapping(uint256 => bool) public fulfilled;
    /// The latest pushed price of a pair (8 decimals) and when it was pushed.
    mapping(string => uint256) public latest;
    mapping(string => uint256) public updatedAt;

    event PriceRequested(uint256 indexed id, string pair);
    event PriceFulfilled(uint256 indexed id, uint256 price);
    event PriceUpdated(string pair, uint256 price);

    error NotTheOracle();
    error UnknownRequest(uint256 id);
    error AlreadyFulfilled(uint256 id);

    constructor(address oracle_) {
        oracle = oracle_;
    }

    /// Asks for `pair`'s price (for example "ETH/USD"); returns the request's id.
    function request(string calldata pair) external returns (uint256 id) {
        id = ++lastId;
        pairs[id] = pair;
        emit PriceRequested(id, pair);
    }

    /// The oracle's answer to request `id`, accepted once.
    function fulfill(uint256 id, uint256 price) external {
        if (msg.sender != oracle) revert NotTheOracle();
        if (id == 0 || id > lastId) revert UnknownRequest(id);
        if (fulfilled[id]) revert AlreadyFulfilled(id);
        fulfilled[id] = true;
        prices[id] = price;
        emit PriceFulfilled(id, price);
    }

    /// The oracle's scheduled push of `pair`'s price.
    function update(string calldata pair, uint256 price) external {
        if (msg.sender != oracle) revert NotTheOracle();
        latest[pair] = price;
        updatedAt[pair] = block.timestamp;
        emit PriceUpdated(pair, price);
    }
}
