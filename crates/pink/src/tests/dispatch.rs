//! Dispatching: ids, HTTP, cache, logs, query-only powers, chain facts, gas and malformed input.

use super::*;

#[test]
fn other_extensions_and_unknown_functions_are_unsupported() {
    let f = Fixture::new();
    let e = env(Query, CONTRACT);
    for function in [0, 26, 100, u16::MAX] {
        assert_eq!(f.raw(&e, function, &[]), Err(ExtensionError::Unsupported));
    }
    let id = ExtensionId {
        extension: 1,
        function: 12,
    };
    assert_eq!(
        f.ext.call(&e, &f.state, id, &[]),
        Err(ExtensionError::Unsupported)
    );
    for id in 1..=25 {
        let func = PinkFunction::from_id(id).unwrap();
        assert_eq!(func as u16, id);
    }
}

#[test]
fn http_request_goes_to_the_host_in_queries_only() {
    let f = Fixture::new();
    let out = f.ok(Query, 1, get("https://example.com/"));
    assert_eq!(out, response(200, b"hi").encode());
    let calls = f.host.http.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "https://example.com/");
    // Bounded by the query's 5 s left, below the 10 s maximum.
    assert!(calls[0].1 <= Duration::from_secs(5) && calls[0].1 > Duration::from_secs(4));

    // In a command, Phala's fixed answer: 523, the same on every worker, no request made.
    let out = f.ok(Command, 1, get("https://example.com/"));
    let fixed = HttpResponse::decode(&mut &out[..]).unwrap();
    assert_eq!(
        (fixed.status_code, fixed.reason_phrase.as_str()),
        (523, "API Unavailable")
    );
    assert_eq!(
        f.host.http.lock().unwrap().len(),
        1,
        "no request in a command"
    );
    // Malformed arguments still trap in a command.
    assert!(f.raw(&env(Command, CONTRACT), 1, &[1, 2]).is_err());

    // A request that cannot reach its server is an answer the contract can handle (523), a
    // failure after connecting 524; bad input and timeouts trap, as on Phala.
    for (error, status) in [
        (HttpRequestError::NetworkError, Some(523)),
        (HttpRequestError::NotAllowed, Some(523)),
        (HttpRequestError::ResponseTooLarge, Some(524)),
        (HttpRequestError::InvalidUrl, None),
        (HttpRequestError::Timeout, None),
    ] {
        let mut host = MockHost::new([3; 32]);
        host.http_result = Err(error);
        let f = Fixture::with_host(host);
        match status {
            Some(code) => {
                let out = f.ok(Query, 1, get("https://example.com/"));
                let r = HttpResponse::decode(&mut &out[..]).unwrap();
                assert_eq!(r.status_code, code, "{error:?}");
                assert_eq!(r.body, error.to_string().into_bytes());
            }
            None => assert_eq!(
                f.failed(Query, 1, get("https://example.com/")),
                format!("http_request: {error}")
            ),
        }
    }
}

#[test]
fn http_request_without_time_left_fails_before_asking_the_host() {
    let f = Fixture::new();
    let mut e = env(Query, CONTRACT);
    e.deadline = Some(Instant::now());
    let err = f.raw(&e, 1, &get("https://x/").encode()).unwrap_err();
    assert!(err.to_string().contains("no time left"), "{err}");
    let out = f
        .raw(&e, 22, &(vec![get("https://x/")], 1000u64).encode())
        .unwrap();
    assert_eq!((out.status, out.output), (6, vec![]), "Timeout status");
    assert!(f.host.http.lock().unwrap().is_empty());
}

#[test]
fn batch_http_request_reports_errors_as_status_codes() {
    let f = Fixture::new();
    let reqs = vec![get("https://a/"), get("https://bad/")];
    let out = f.ok(Query, 22, (reqs, 2_000u64));
    let expected: Vec<Result<HttpResponse, HttpRequestError>> = vec![
        Ok(response(200, b"https://a/")),
        Err(HttpRequestError::InvalidUrl),
    ];
    // Status 0 carries the `Ok` value alone (pink's EncodeOutput), not a `Result`.
    assert_eq!(out, expected.encode());
    let calls = f.host.http.lock().unwrap().clone();
    assert!(calls.iter().all(|(_, t)| *t <= Duration::from_secs(2)));

    // Over the batch limit: TooManyRequests (discriminant 7 + 1), empty output.
    let six = vec![get("https://a/"); 6];
    let out = f.call(Query, 22, (six, 1_000u64)).unwrap();
    assert_eq!((out.status, out.output), (8, vec![]));

    // The contract's timeout is capped by the configured maximum.
    f.host.http.lock().unwrap().clear();
    f.ok(Query, 22, (vec![get("https://a/")], u64::MAX));
    assert!(f.host.http.lock().unwrap()[0].1 <= Duration::from_secs(5));

    // An empty batch needs no host.
    assert_eq!(
        f.ok(Query, 22, (Vec::<HttpRequest>::new(), 1u64)),
        vec![0u8]
    );

    // In a command: Err(NotAllowed) (discriminant 6 + 1), as on Phala.
    let out = f
        .call(Command, 22, (vec![get("https://a/")], 1_000u64))
        .unwrap();
    assert_eq!((out.status, out.output), (7, vec![]));

    let mut host = MockHost::new([3; 32]);
    host.batch_error = Some(HttpRequestError::NotAllowed);
    let f = Fixture::with_host(host);
    let out = f.call(Query, 22, (vec![get("https://a/")], 1u64)).unwrap();
    assert_eq!((out.status, out.output), (7, vec![]));
}

#[test]
fn cache_in_queries_uses_the_host() {
    let f = Fixture::new();
    assert!(f
        .ok(Query, 6, (b"key".to_vec(), b"value".to_vec()))
        .is_empty());
    assert_eq!(
        f.ok(Query, 8, b"key".to_vec()),
        Some(b"value".to_vec()).encode()
    );
    assert!(f.ok(Query, 7, (b"key".to_vec(), 60u64)).is_empty());
    assert_eq!(
        f.host.expirations.lock().unwrap().clone(),
        vec![(b"key".to_vec(), 60)]
    );
    assert_eq!(
        f.ok(Query, 9, b"key".to_vec()),
        Some(b"value".to_vec()).encode()
    );
    assert_eq!(f.ok(Query, 8, b"key".to_vec()), [0]);
    // Over the quota: status 1, empty output.
    let out = f.call(Query, 6, (b"k".to_vec(), vec![0u8; 100])).unwrap();
    assert_eq!((out.status, out.output), (1, vec![]));
    // Each contract has its own cache.
    f.ok(Query, 6, (b"key".to_vec(), b"mine".to_vec()));
    let other = f.call_as(Query, OTHER, 8, b"key".to_vec()).unwrap();
    assert_eq!(other.output, [0]);
}

#[test]
fn cache_in_commands_writes_but_never_answers_from_this_workers_cache() {
    let f = Fixture::new();
    assert!(f
        .ok(Command, 6, (b"key".to_vec(), b"value".to_vec()))
        .is_empty());
    assert_eq!(
        f.host
            .cache
            .lock()
            .unwrap()
            .get(&(CONTRACT, b"key".to_vec())),
        Some(&b"value".to_vec())
    );
    // `cache_get` answers None without asking the host.
    assert_eq!(f.ok(Command, 8, b"key".to_vec()), [0]);
    assert_eq!(*f.host.cache_gets.lock().unwrap(), 0);
    // Quota errors depend on the worker's cache: a command always answers Ok.
    let out = f.call(Command, 6, (b"k".to_vec(), vec![0u8; 100])).unwrap();
    assert_eq!((out.status, out.output), (0, vec![]));
    // `cache_remove` removes but answers None.
    assert_eq!(f.ok(Command, 9, b"key".to_vec()), [0]);
    assert!(f.host.cache.lock().unwrap().is_empty());
    assert!(f.ok(Command, 7, (b"key".to_vec(), 0u64)).is_empty());
    assert_eq!(f.host.expirations.lock().unwrap().len(), 1);
}

#[test]
fn log_reaches_the_host_with_mode_and_level() {
    let f = Fixture::new();
    assert!(f.ok(Command, 10, (1u8, "boom")).is_empty());
    assert!(f.ok(Query, 10, (5u8, "fine")).is_empty());
    assert_eq!(
        f.host.logs.lock().unwrap().clone(),
        vec![
            (CONTRACT, Command, 1, "boom".to_string()),
            (CONTRACT, Query, 5, "fine".to_string()),
        ]
    );
    // Not UTF-8: bad arguments.
    let message = f.failed(Query, 10, (1u8, vec![0xffu8, 0xfe]));
    assert!(message.starts_with("bad arguments to log"), "{message}");
}

#[test]
fn nondeterministic_powers_answer_in_queries_and_fixed_values_in_commands() {
    let f = Fixture::new();
    assert_eq!(f.ok(Query, 11, 3u8), vec![0xabu8; 3].encode());
    assert_eq!(f.ok(Query, 11, 0u8), [0]);
    // Phala's answers in a transaction: no randomness, the clock at 0, js_eval an exception.
    assert_eq!(f.ok(Command, 11, 3u8), Vec::<u8>::new().encode());
    assert_eq!(f.ok(Query, 18, ()), 1_700_000_000_000u64.encode());
    assert_eq!(f.ok(Command, 18, ()), 0u64.encode());
    let js = f.ok(
        Command,
        24,
        (vec![JsCode::Source("1".into())], Vec::<String>::new()),
    );
    assert!(matches!(
        JsValue::decode(&mut &js[..]).unwrap(),
        JsValue::Exception(m) if m.contains("not available in a transaction")
    ));
    assert_eq!(f.ok(Query, 12, ()), [0]);
    assert_eq!(f.ok(Command, 12, ()), [1]);
    assert_eq!(f.ok(Query, 17, ()), [0x55; 32]);
    assert_eq!(f.ok(Command, 17, ()), [0; 32]);
}

#[test]
fn chain_facts() {
    let mut f = Fixture::new();
    f.state.balances.insert(OTHER, 1_000);
    let code = CodeHash([9; 32]);
    f.state.codes.insert(code);

    assert_eq!(
        f.ok(Command, 15, ()),
        blake2_256(b"phat/system-contract").to_vec()
    );
    assert_eq!(f.ok(Query, 16, OTHER), (1_000u128, 1_000u128).encode());
    assert_eq!(f.ok(Query, 16, CONTRACT), [0u8; 32]);
    assert_eq!(f.ok(Command, 19, (code.0, false)), [1]);
    assert_eq!(f.ok(Command, 19, (code.0, true)), [0], "no SideVM");
    assert_eq!(f.ok(Command, 19, ([0u8; 32], false)), [0]);
    // (1, 2): the pink runtime whose functions phat serves, as Phala answers.
    assert_eq!(f.ok(Command, 21, ()), [1, 0, 0, 0, 2, 0, 0, 0]);
    let (block, hash) = event_chain_head(42);
    assert_eq!(block, 42);
    assert_eq!(f.ok(Command, 23, ()), (42u64, hash).encode());
    assert_ne!(event_chain_head(43).1, hash);

    f.state.broken = true;
    assert_eq!(
        f.call(Query, 16, OTHER),
        Err(ExtensionError::Backend("disk on fire".into()))
    );
    assert_eq!(
        f.call(Query, 19, (code.0, false)),
        Err(ExtensionError::Backend("disk on fire".into()))
    );
}

#[test]
fn unsupported_functions_answer_in_their_types() {
    let f = Fixture::new();
    // Only the system contract may import system code; it gets `None`.
    let system = crate::default_system_contract_id();
    let out = f.call_as(Command, system, 20, CONTRACT).unwrap();
    assert_eq!(out.output, [0], "import_latest_system_code: None");
    assert_eq!(
        f.failed(Command, 20, CONTRACT),
        "import_latest_system_code: reserved for the system contract"
    );
    let js = f.ok(
        Query,
        24,
        (vec![JsCode::Source("1+1".into())], vec!["a".to_string()]),
    );
    // The host runs the script (this mock runs none); in a command the host is not asked.
    assert_eq!(
        JsValue::decode(&mut &js[..]).unwrap(),
        JsValue::Exception("this host runs no JavaScript".into())
    );
    assert_eq!(js[0], 5, "Exception is JsValue's sixth variant");
    let in_command = f.ok(
        Command,
        24,
        (vec![JsCode::Source("1".into())], Vec::<String>::new()),
    );
    assert_ne!(in_command, js, "the host was asked in a command");
    // worker_sgx_quote: in a query, the host's quote over the worker's public key; in a
    // command, `None` (it differs per worker).
    let mut report_data = [0u8; 64];
    report_data[..32].copy_from_slice(&[0x55; 32]);
    let expected = Some(crate::SgxQuote {
        attestation_type: crate::AttestationType::Dcap,
        quote: [b"quote:".as_slice(), &report_data].concat(),
    });
    assert_eq!(f.ok(Query, 25, ()), expected.encode());
    assert_eq!(
        f.ok(Command, 25, ()),
        [0],
        "worker_sgx_quote in a command: None"
    );
    let _ = (JsValue::Undefined, JsValue::Null, JsCode::Bytecode(vec![]));
    let _ = (JsValue::String(String::new()), JsValue::Bytes(vec![]));
    let _ = JsValue::Other(String::new());
}

#[test]
fn gas_grows_with_bytes_and_work() {
    let f = Fixture::new();
    let gas = PinkGas::default();
    let small = f.call(Query, 10, (3u8, "a")).unwrap();
    let big = f.call(Query, 10, (3u8, "a".repeat(1000))).unwrap();
    assert!(small.gas >= gas.call);
    assert_eq!(
        big.gas - small.gas,
        999 * gas.per_byte + 1 /* compact prefix */
    );
    let derive = f.call(Query, 4, b"salt".to_vec()).unwrap();
    assert_eq!(
        derive.gas,
        gas.call + gas.crypto + gas.per_byte * (5 + derive.output.len() as Gas)
    );
    let http = f.call(Query, 1, get("https://a/")).unwrap();
    assert!(http.gas >= gas.call + gas.http);
    let batch = f
        .call(Query, 22, (vec![get("https://a/"); 3], 1u64))
        .unwrap();
    assert!(batch.gas >= gas.call + 3 * gas.http);
    // The same command costs the same every time.
    let sign = (SigType::Sr25519, vec![1u8; 32], b"m".to_vec());
    assert_eq!(
        f.call(Command, 2, &sign).unwrap(),
        f.call(Command, 2, &sign).unwrap()
    );
}

#[test]
fn too_little_gas_stops_before_the_work() {
    let f = Fixture::new();
    let mut e = env(Query, CONTRACT);
    e.gas_left = 5_000;
    let out = f.raw(&e, 1, &get("https://a/").encode()).unwrap();
    assert!(
        out.gas > e.gas_left,
        "the runtime fails this with out-of-gas"
    );
    assert!(out.output.is_empty());
    assert!(f.host.http.lock().unwrap().is_empty(), "no request made");
    e.gas_left = 10;
    let out = f.raw(&e, 10, &(1u8, "x").encode()).unwrap();
    assert!(out.gas > e.gas_left);
    assert!(f.host.logs.lock().unwrap().is_empty());
}

#[test]
fn malformed_input_fails_cleanly_and_never_panics() {
    let f = Fixture::new();
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![1],
        vec![0xff; 3],
        vec![0xff; 40],
        vec![2, 0xff, 0xff, 0xff, 0xff, 0xff],
        (0..=255u8).collect(),
        vec![0xfe, 0xff, 0xff, 0xff],
        [vec![0x03], vec![0xff; 4], vec![0; 8]].concat(),
    ];
    for mode in [Query, Command] {
        let e = env(mode, CONTRACT);
        for function in 0..=30 {
            for input in &garbage {
                if let Err(ExtensionError::Failed(m)) = f.raw(&e, function, input) {
                    assert!(!m.is_empty());
                }
            }
        }
    }
    // Trailing bytes are bad arguments, as in pallet-contracts' `read_as`.
    let mut input = (1u8, "x").encode();
    input.push(0);
    let err = f.raw(&env(Query, CONTRACT), 10, &input).unwrap_err();
    assert!(err.to_string().starts_with("bad arguments to log"), "{err}");
    let err = f.raw(&env(Query, CONTRACT), 12, &[0]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bad arguments to is_in_transaction"),
        "{err}"
    );
}

#[test]
fn schedule_changes_name_the_calling_contract_and_only_the_system_names_another() {
    use crate::{ScheduleError, ScheduleRequest};
    use phat_primitives::protocol::{MissedTicks, ScheduleDef, ScheduleSpec};
    let f = Fixture::new();
    let def = ScheduleDef {
        spec: ScheduleSpec::Every { ms: 1_000 },
        data: vec![1, 2, 3, 4].into(),
        gas_limit: 10,
        missed: MissedTicks::Skip,
    };
    let ok = Ok::<(), ScheduleError>(()).encode();
    assert_eq!(f.ok(Command, 0x8001, &def), ok);
    assert_eq!(f.ok(Command, 0x8002, [1u8, 2, 3, 4]), ok);
    // Another contract's schedule: refused to anyone but the system contract, without asking
    // the host.
    let other = AccountId([0x77; 32]);
    assert_eq!(
        f.ok(Command, 0x8003, (other, &def)),
        Err::<(), _>(ScheduleError::NotPermitted).encode()
    );
    let system = crate::default_system_contract_id();
    let out = f
        .call_as(Command, system, 0x8003, (other, &def))
        .expect("the system contract's call");
    assert_eq!(out.output, ok);
    assert_eq!(
        f.host.schedules.lock().unwrap().clone(),
        vec![
            (
                Command,
                ScheduleRequest::Set {
                    contract: CONTRACT,
                    def: def.clone()
                }
            ),
            (
                Command,
                ScheduleRequest::Clear {
                    contract: CONTRACT,
                    selector: [1, 2, 3, 4]
                }
            ),
            (
                Command,
                ScheduleRequest::Set {
                    contract: other,
                    def: def.clone()
                }
            ),
        ]
    );
    // Malformed input is the contract's bug: a trap with a reason.
    let message = f.failed(Command, 0x8001, [9u8]);
    assert!(
        message.starts_with("bad arguments to schedule_set"),
        "{message}"
    );
}
