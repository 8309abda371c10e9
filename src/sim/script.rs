//! What a simulated container "does" and what an ExecSync command "returns". A container's
//! behaviour is scripted through its own env (`PODSTART_SIM_*`), so a test describes it in the pod
//! spec and the script travels across process boundaries with the CRI request. Pure rules: no
//! clocks, no state, no I/O; the store and the RuntimeService apply them.

use std::time::Duration;

use k8s_cri::v1::KeyValue;
use thiserror::Error;

/// Env key: the exit code the container ends with after StartContainer.
pub const EXIT_CODE_ENV: &str = "PODSTART_SIM_EXIT_CODE";
/// Env key: how many milliseconds the container runs before it exits on its own.
pub const RUN_MS_ENV: &str = "PODSTART_SIM_RUN_MS";
/// Env key: StartContainer fails with this message (UNKNOWN), as for a missing binary.
pub const START_ERROR_ENV: &str = "PODSTART_SIM_START_ERROR";
/// Env key: exit codes by attempt (`1,1,0`: attempts 0 and 1 exit 1, later ones exit 0; `run`
/// instead of a code runs until stopped); wins over `PODSTART_SIM_EXIT_CODE`.
pub(crate) const EXIT_CODES_ENV: &str = "PODSTART_SIM_EXIT_CODES";
/// Env key: text the container writes to its termination message file when it exits.
pub(crate) const TERMINATION_MESSAGE_ENV: &str = "PODSTART_SIM_TERMINATION_MESSAGE";
/// Env key: lines (separated by `\n` or `|`) the container prints to stdout when it starts.
pub(crate) const LOG_ENV: &str = "PODSTART_SIM_LOG";

/// A `PODSTART_SIM_*` value that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{key}={value:?} is not {expected}")]
pub(crate) struct ScriptError {
    key: &'static str,
    value: String,
    expected: &'static str,
}

/// How long a started container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunPlan {
    /// Neither key set: runs until StopContainer.
    UntilStopped,
    /// Exits on its own `run_for` after start, with `exit_code`.
    ExitAfter { run_for: Duration, exit_code: i32 },
}

/// A container's scripted behaviour, read once at CreateContainer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Script {
    /// StartContainer fails with this message; the container ends EXITED 128 `StartError`.
    pub(crate) start_error: Option<String>,
    /// What happens after a successful start.
    pub(crate) run: RunPlan,
    /// Written to the termination message file at exit.
    pub(crate) termination_message: Option<String>,
    /// Printed to the log at start, one entry per line.
    pub(crate) log_lines: Vec<String>,
}

impl Script {
    /// Reads the script from a container's env for its `attempt` (the CRI metadata attempt). The
    /// last occurrence of a key wins, as in a pod spec; an empty `PODSTART_SIM_START_ERROR` counts
    /// as unset.
    pub(crate) fn from_env(envs: &[KeyValue], attempt: u32) -> Result<Self, ScriptError> {
        let lookup = |key: &str| {
            envs.iter()
                .rev()
                .find(|kv| kv.key == key)
                .map(|kv| kv.value.as_str())
        };
        let by_attempt = lookup(EXIT_CODES_ENV)
            .map(|value| {
                value
                    .split(',')
                    .map(|code| match code.trim() {
                        "run" => Ok(None),
                        code => parse(
                            EXIT_CODES_ENV,
                            code,
                            "a comma-separated list of exit codes or `run`",
                        )
                        .map(Some),
                    })
                    .collect::<Result<Vec<Option<i32>>, _>>()
            })
            .transpose()?;
        let exit_code = match &by_attempt {
            Some(codes) => codes
                .get(attempt as usize)
                .or(codes.last())
                .copied()
                .flatten(),
            None => lookup(EXIT_CODE_ENV)
                .map(|value| parse(EXIT_CODE_ENV, value, "an integer exit code"))
                .transpose()?,
        };
        let runs_on = by_attempt.is_some() && exit_code.is_none();
        let run_ms: Option<u64> = lookup(RUN_MS_ENV)
            .map(|value| parse(RUN_MS_ENV, value, "a number of milliseconds"))
            .transpose()?;
        let run = match (exit_code, run_ms) {
            (None, _) if runs_on => RunPlan::UntilStopped,
            (None, None) => RunPlan::UntilStopped,
            (exit_code, run_ms) => RunPlan::ExitAfter {
                run_for: Duration::from_millis(run_ms.unwrap_or(0)),
                exit_code: exit_code.unwrap_or(0),
            },
        };
        let start_error = lookup(START_ERROR_ENV)
            .filter(|message| !message.is_empty())
            .map(str::to_owned);
        let termination_message = lookup(TERMINATION_MESSAGE_ENV).map(str::to_owned);
        let log_lines = lookup(LOG_ENV)
            .map(|text| text.split(['\n', '|']).map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(Script {
            start_error,
            run,
            termination_message,
            log_lines,
        })
    }
}

fn parse<T: std::str::FromStr>(
    key: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, ScriptError> {
    value.trim().parse().map_err(|_| ScriptError {
        key,
        value: value.to_owned(),
        expected,
    })
}

/// What an ExecSync command does in the sim.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExecPlan {
    /// Returns at once with this exit code.
    Exit(i32),
    /// Sleeps this long (subject to the request's timeout), then exits 0.
    Sleep(Duration),
    /// Exits 1 the first N times this command runs in this container (counted per sandbox and
    /// container name, so restarts keep counting), 0 afterwards: a probe that succeeds late.
    FailFirst(u32),
    /// The Nth run of this command in this container exits with the Nth code, the last code
    /// repeating (counted as `FailFirst` counts): a probe that fails after N successes, or flips.
    ExitCodes(Vec<i32>),
}

/// Decides an ExecSync result from the command alone:
/// - joined text ending in `exit N` (e.g. `["sh", "-c", "exit 3"]`) exits N (mod 256, like sh);
/// - `["false"]` exits 1;
/// - `["sleep", "<secs>"]` sleeps (`s`/`m`/`h`/`d` suffixes as coreutils; unparsable exits 1);
/// - `[.., "fail-first", "N"]` exits 1 the first N times, then 0;
/// - `[.., "exit-codes", "0,0,1"]` exits with the codes in turn, the last repeating;
/// - anything else exits 0.
pub(crate) fn exec_plan(cmd: &[String]) -> ExecPlan {
    if let Some(code) = trailing_exit(cmd) {
        return ExecPlan::Exit(code);
    }
    if let [.., word, n] = cmd
        && word == "fail-first"
        && let Ok(n) = n.parse()
    {
        return ExecPlan::FailFirst(n);
    }
    if let [.., word, codes] = cmd
        && word == "exit-codes"
        && let Ok(codes) = codes
            .split(',')
            .map(|c| c.trim().parse())
            .collect::<Result<Vec<i32>, _>>()
    {
        return ExecPlan::ExitCodes(codes);
    }
    match cmd {
        [program] if is_program(program, "false") => ExecPlan::Exit(1),
        [program, secs] if is_program(program, "sleep") => {
            parse_sleep(secs).map_or(ExecPlan::Exit(1), ExecPlan::Sleep)
        }
        _ => ExecPlan::Exit(0),
    }
}

fn trailing_exit(cmd: &[String]) -> Option<i32> {
    let joined = cmd.join(" ");
    let mut words = joined.split_whitespace().rev();
    let code = words.next()?;
    if words.next()? != "exit" {
        return None;
    }
    let code: i64 = code.parse().ok()?;
    i32::try_from(code.rem_euclid(256)).ok()
}

fn is_program(arg: &str, name: &str) -> bool {
    arg == name || arg.rsplit_once('/').is_some_and(|(_, base)| base == name)
}

fn parse_sleep(arg: &str) -> Option<Duration> {
    let (number, unit) = match arg.char_indices().last()? {
        (at, 's') => (&arg[..at], 1.0),
        (at, 'm') => (&arg[..at], 60.0),
        (at, 'h') => (&arg[..at], 3600.0),
        (at, 'd') => (&arg[..at], 86400.0),
        _ => (arg, 1.0),
    };
    let secs: f64 = number.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs * unit).ok()
}

#[cfg(test)]
mod tests;
