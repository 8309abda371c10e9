use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(key, value)| KeyValue {
            key: (*key).to_owned(),
            value: (*value).to_owned(),
        })
        .collect()
}

fn cmd(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

#[test]
fn no_script_runs_until_stopped() {
    let script = Script::from_env(&env(&[("PATH", "/bin")]), 0).unwrap();
    assert_eq!(script.run, RunPlan::UntilStopped);
    assert_eq!(script.start_error, None);
}

#[test]
fn exit_code_and_run_ms_combine() {
    let script = Script::from_env(&env(&[(EXIT_CODE_ENV, "3"), (RUN_MS_ENV, "250")]), 0).unwrap();
    assert_eq!(
        script.run,
        RunPlan::ExitAfter {
            run_for: Duration::from_millis(250),
            exit_code: 3
        }
    );
}

#[test]
fn run_ms_alone_exits_zero_and_exit_code_alone_exits_at_once() {
    let only_run = Script::from_env(&env(&[(RUN_MS_ENV, "40")]), 0).unwrap();
    assert_eq!(
        only_run.run,
        RunPlan::ExitAfter {
            run_for: Duration::from_millis(40),
            exit_code: 0
        }
    );
    let only_code = Script::from_env(&env(&[(EXIT_CODE_ENV, "-1")]), 0).unwrap();
    assert_eq!(
        only_code.run,
        RunPlan::ExitAfter {
            run_for: Duration::ZERO,
            exit_code: -1
        }
    );
}

#[test]
fn last_occurrence_wins_and_empty_start_error_is_unset() {
    let script = Script::from_env(
        &env(&[
            (EXIT_CODE_ENV, "1"),
            (EXIT_CODE_ENV, "7"),
            (START_ERROR_ENV, ""),
        ]),
        0,
    )
    .unwrap();
    assert_eq!(
        script.run,
        RunPlan::ExitAfter {
            run_for: Duration::ZERO,
            exit_code: 7
        }
    );
    assert_eq!(script.start_error, None);
}

#[test]
fn start_error_is_kept_verbatim() {
    let script = Script::from_env(
        &env(&[(START_ERROR_ENV, "exec: \"/nonexistent\": stat")]),
        0,
    )
    .unwrap();
    assert_eq!(
        script.start_error.as_deref(),
        Some("exec: \"/nonexistent\": stat")
    );
}

#[test]
fn bad_values_are_rejected_with_the_key() {
    let err = Script::from_env(&env(&[(RUN_MS_ENV, "soon")]), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "PODSTART_SIM_RUN_MS=\"soon\" is not a number of milliseconds"
    );
    let err = Script::from_env(&env(&[(EXIT_CODE_ENV, "1.5")]), 0).unwrap_err();
    assert!(err.to_string().starts_with("PODSTART_SIM_EXIT_CODE="));
    assert!(Script::from_env(&env(&[(RUN_MS_ENV, "-5")]), 0).is_err());
}

#[test]
fn exec_exit_rules() {
    assert_eq!(exec_plan(&cmd(&["sh", "-c", "exit 3"])), ExecPlan::Exit(3));
    assert_eq!(
        exec_plan(&cmd(&["/bin/sh", "-c", "echo hi; exit 42"])),
        ExecPlan::Exit(42)
    );
    assert_eq!(
        exec_plan(&cmd(&["sh", "-c", "exit 256"])),
        ExecPlan::Exit(0)
    );
    assert_eq!(
        exec_plan(&cmd(&["sh", "-c", "exit -1"])),
        ExecPlan::Exit(255)
    );
    assert_eq!(exec_plan(&cmd(&["false"])), ExecPlan::Exit(1));
    assert_eq!(exec_plan(&cmd(&["/bin/false"])), ExecPlan::Exit(1));
    assert_eq!(exec_plan(&cmd(&["false", "x"])), ExecPlan::Exit(0));
    assert_eq!(exec_plan(&cmd(&["true"])), ExecPlan::Exit(0));
    assert_eq!(exec_plan(&cmd(&["sh", "-c", "exit"])), ExecPlan::Exit(0));
    assert_eq!(exec_plan(&[]), ExecPlan::Exit(0));
}

#[test]
fn exec_sleep_rules() {
    assert_eq!(
        exec_plan(&cmd(&["sleep", "2"])),
        ExecPlan::Sleep(Duration::from_secs(2))
    );
    assert_eq!(
        exec_plan(&cmd(&["/bin/sleep", "0.25"])),
        ExecPlan::Sleep(Duration::from_millis(250))
    );
    assert_eq!(
        exec_plan(&cmd(&["sleep", "1m"])),
        ExecPlan::Sleep(Duration::from_secs(60))
    );
    assert_eq!(exec_plan(&cmd(&["sleep", "abc"])), ExecPlan::Exit(1));
    assert_eq!(exec_plan(&cmd(&["sleep", "-1"])), ExecPlan::Exit(1));
    assert_eq!(exec_plan(&cmd(&["sleep", "inf"])), ExecPlan::Exit(1));
}

#[test]
fn exit_codes_follow_the_attempt_and_the_last_repeats() {
    let envs = env(&[(EXIT_CODES_ENV, "1,1,0"), (EXIT_CODE_ENV, "9")]);
    let code = |attempt| match Script::from_env(&envs, attempt).unwrap().run {
        RunPlan::ExitAfter { exit_code, .. } => exit_code,
        RunPlan::UntilStopped => panic!("scripted"),
    };
    assert_eq!([code(0), code(1), code(2), code(7)], [1, 1, 0, 0]);
    assert!(Script::from_env(&env(&[(EXIT_CODES_ENV, "1,x")]), 0).is_err());
    let then_run = env(&[(EXIT_CODES_ENV, "1,run"), (RUN_MS_ENV, "10")]);
    assert!(matches!(
        Script::from_env(&then_run, 0).unwrap().run,
        RunPlan::ExitAfter { exit_code: 1, .. }
    ));
    assert_eq!(
        Script::from_env(&then_run, 1).unwrap().run,
        RunPlan::UntilStopped
    );
}

#[test]
fn termination_message_and_log_lines() {
    let script = Script::from_env(
        &env(&[(TERMINATION_MESSAGE_ENV, "bye"), (LOG_ENV, "one|two")]),
        0,
    )
    .unwrap();
    assert_eq!(script.termination_message.as_deref(), Some("bye"));
    assert_eq!(script.log_lines, vec!["one", "two"]);
}

#[test]
fn fail_first_rule() {
    assert_eq!(
        exec_plan(&cmd(&["probe", "fail-first", "2"])),
        ExecPlan::FailFirst(2)
    );
    assert_eq!(exec_plan(&cmd(&["fail-first", "x"])), ExecPlan::Exit(0));
}

#[test]
fn exit_codes_rule() {
    assert_eq!(
        exec_plan(&cmd(&["probe", "exit-codes", "0, 0,1"])),
        ExecPlan::ExitCodes(vec![0, 0, 1])
    );
    assert_eq!(exec_plan(&cmd(&["exit-codes", "0,x"])), ExecPlan::Exit(0));
}
