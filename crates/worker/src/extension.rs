//! The worker's side of the pink chain extension. So far: `log` (function 10), which sends a
//! contract's log lines to its log stream. The other pink functions answer "unsupported"
//! until the off-chain-powers work lands.

use parity_scale_codec::Decode;
use parking_lot::Mutex;
use phat_primitives::protocol::{LogRecord, Seq};
use phat_primitives::Mode;
use phat_runtime::{ChainExtension, ExtensionEnv, ExtensionError, ExtensionId, ExtensionOutput};

/// pink's function id of `log`.
const LOG: u16 = 10;
/// Longest log line kept (bytes); longer ones are cut.
const MAX_LINE: usize = 4096;

/// The extension serving one command or query; collects the log lines it produced.
pub(crate) struct WorkerExtension {
    seq: Option<Seq>,
    timestamp: u64,
    logs: Mutex<Vec<LogRecord>>,
}

impl WorkerExtension {
    pub(crate) fn new(seq: Option<Seq>, timestamp: u64) -> Self {
        Self {
            seq,
            timestamp,
            logs: Mutex::new(Vec::new()),
        }
    }

    /// The log lines produced so far.
    pub(crate) fn take_logs(&self) -> Vec<LogRecord> {
        std::mem::take(&mut self.logs.lock())
    }
}

fn level_name(level: u8) -> &'static str {
    match level {
        1 => "error",
        2 => "warn",
        3 => "info",
        4 => "debug",
        5 => "trace",
        _ => "log",
    }
}

impl ChainExtension for WorkerExtension {
    fn call(
        &self,
        env: &ExtensionEnv,
        id: ExtensionId,
        input: &[u8],
    ) -> Result<ExtensionOutput, ExtensionError> {
        if id.extension != 0 || id.function != LOG {
            return Err(ExtensionError::Unsupported);
        }
        let (level, mut message) = <(u8, String)>::decode(&mut &input[..])
            .map_err(|e| ExtensionError::Failed(format!("log: bad arguments: {e}")))?;
        if message.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let mut logs = self.logs.lock();
        if logs.len() < 1000 {
            logs.push(LogRecord {
                contract: env.address,
                level: level_name(level).into(),
                origin: env.mode,
                seq: if env.mode == Mode::Command {
                    self.seq
                } else {
                    None
                },
                timestamp: self.timestamp,
                message,
            });
        }
        Ok(ExtensionOutput {
            status: 0,
            output: Vec::new(),
            gas: 0,
        })
    }
}
