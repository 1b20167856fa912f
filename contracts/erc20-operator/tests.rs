use crate::erc20_operator::*;
