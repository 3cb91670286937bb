//! Configuration errors reach the operator as one clear message naming the
//! key, file or user; `config show` explains and masks; the starter
//! configuration is written when nothing exists.

use crate::{Fixture, RUNNER, run_to_end};

fn assert_fails_with(done: &crate::Done, needles: &[&str]) {
    assert_ne!(done.code, Some(0), "{done:?}");
    for needle in needles {
        assert!(
            done.stderr.contains(needle),
            "missing {needle:?} in:\n{}",
            done.stderr
        );
    }
}

#[test]
fn an_unknown_agent_key_fails_start_and_check_naming_it() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    fixture.write(
        ".oxydra/agent.toml",
        "[selection]\nprovider = \"fake\"\nmodel = \"gpt-4.1\"\n[runtime]\nmax_turnz = 3\n\
         [providers.fake]\nprovider_type = \"openai\"\n",
    );
    for command in [&["start"][..], &["config", "check"], &["config", "show"]] {
        let done = fixture.run(command);
        assert_fails_with(
            &done,
            &[
                "unknown configuration key 'runtime.max_turnz'",
                "agent.toml",
            ],
        );
    }
    // Nothing was started.
    assert!(!fixture.endpoint_file().exists());
}

#[test]
fn a_zero_turn_limit_fails_check_and_the_guest_start_naming_the_key() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    fixture.write(
        ".oxydra/agent.toml",
        "[selection]\nprovider = \"fake\"\nmodel = \"gpt-4.1\"\n[runtime]\nmax_turns = 0\n\
         [providers.fake]\nprovider_type = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n",
    );
    let check = fixture.run(&["config", "check"]);
    assert_fails_with(&check, &["runtime.max_turns must be greater than 0"]);
    // The runner passes the configuration on; the guest refuses it, and
    // the runner reports the guest's exit.
    let start = fixture.run(&["start"]);
    assert_fails_with(
        &start,
        &[
            "runtime.max_turns",
            "oxydra-vm exited with exit status 2 before it was ready",
        ],
    );
    assert!(!fixture.endpoint_file().exists());
}

#[test]
fn config_check_passes_a_good_configuration_and_catches_an_unknown_model() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    let done = fixture.run(&["config", "check"]);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert!(
        done.stdout.contains("provider 'fake', model 'gpt-4.1'"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout
            .contains("credentials passed to the guest: OPENAI_API_KEY"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains("sandbox tier: process"),
        "{}",
        done.stdout
    );
    fixture.write(
        ".oxydra/agent.toml",
        "[selection]\nprovider = \"fake\"\nmodel = \"gpt-9\"\n[providers.fake]\nprovider_type = \"openai\"\n",
    );
    let done = fixture.run(&["config", "check"]);
    assert_fails_with(&done, &["model 'gpt-9' is unknown for provider 'fake'"]);
}

#[test]
fn config_show_explains_sources_and_masks_the_api_key() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    fixture.write(
        ".oxydra/agent.toml",
        "[selection]\nprovider = \"fake\"\nmodel = \"gpt-4.1\"\n\
         [providers.fake]\nprovider_type = \"openai\"\napi_key = \"sk-very-secret\"\n",
    );
    let mut command = fixture.command(&["config", "show"]);
    command.env("OXYDRA__RUNTIME__MAX_TURNS", "7");
    let done = run_to_end(command);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert!(!done.stdout.contains("sk-very-secret"), "{}", done.stdout);
    let line = |key: &str| {
        done.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{}", done.stdout))
            .to_owned()
    };
    assert!(line("providers.fake.api_key").contains("****"));
    assert!(line("providers.fake.api_key").contains(".oxydra/agent.toml"));
    assert!(line("runtime.max_turns").contains("7"));
    assert!(line("runtime.max_turns").contains("environment variable OXYDRA__RUNTIME__MAX_TURNS"));
    assert!(line("memory.db_path").contains("built-in defaults"));

    // Command-line flags are the highest layer, for show and check alike.
    let mut command = fixture.command(&["config", "show", "--set", "runtime.max_turns=3"]);
    command.env("OXYDRA__RUNTIME__MAX_TURNS", "7");
    let done = run_to_end(command);
    assert_eq!(done.code, Some(0), "{done:?}");
    let max_turns = done
        .stdout
        .lines()
        .find(|l| l.starts_with("runtime.max_turns = "))
        .unwrap_or_default();
    assert!(
        max_turns.contains("3") && max_turns.contains("command-line"),
        "{max_turns}"
    );
    let check = fixture.run(&["--model", "gpt-0-imaginary", "config", "check"]);
    assert_fails_with(&check, &["gpt-0-imaginary"]);
}

#[test]
fn user_selection_errors_are_specific() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    fixture.write(
        "runner.toml",
        "workspace_root = \"workspaces\"\ndefault_tier = \"process\"\n\
         [users.alice]\nconfig_path = \"users/alice.toml\"\n[users.bob]\nconfig_path = \"users/bob.toml\"\n",
    );
    let done = fixture.run(&["start"]);
    assert_fails_with(
        &done,
        &["several users are configured (alice, bob); choose one with --user"],
    );
    let done = fixture.run(&["--user", "carol", "start"]);
    assert_fails_with(
        &done,
        &["user 'carol' is not configured; configured users: alice, bob"],
    );
    // bob's file does not exist.
    let done = fixture.run(&["--user", "bob", "config", "check"]);
    assert_fails_with(
        &done,
        &["cannot read runner configuration", "users/bob.toml"],
    );
}

#[test]
fn missing_credentials_name_user_credential_and_source() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    fixture.write(
        "users/alice.toml",
        "[credentials]\nOPENAI_API_KEY = { file = \"secrets/openai.key\" }\n",
    );
    let done = fixture.run(&["start"]);
    assert_fails_with(
        &done,
        &[
            "credential OPENAI_API_KEY of user 'alice'",
            "users/secrets/openai.key",
            "cannot read it",
        ],
    );
    fixture.write(
        "users/alice.toml",
        "[credentials]\nOPENAI_API_KEY = { env = \"NOT_SET_ANYWHERE\" }\n",
    );
    let done = fixture.run(&["config", "check"]);
    assert_fails_with(
        &done,
        &["NOT_SET_ANYWHERE is not set in the runner's environment"],
    );
}

#[test]
fn unavailable_tiers_and_engines_are_named_and_a_missing_guest_binary_too() {
    let fixture = Fixture::new("http://127.0.0.1:9");
    fixture.write(
        "runner.toml",
        "workspace_root = \"workspaces\"\n[users.alice]\nconfig_path = \"users/alice.toml\"\n",
    );
    // The container tier (the default) with no engine at DOCKER_HOST.
    let mut command = fixture.command(&["start"]);
    let no_engine = format!("unix://{}", fixture.path().join("no-engine.sock").display());
    command.env("DOCKER_HOST", &no_engine);
    let done = run_to_end(command);
    assert_fails_with(
        &done,
        &[
            "container tier: cannot reach the Docker Engine",
            &no_engine,
            "--insecure",
        ],
    );
    fixture.write(
        "users/alice.toml",
        "[credentials]\nOPENAI_API_KEY = { env = \"ALICE_OPENAI_KEY\" }\n[overrides]\ntier = \"micro_vm\"\n",
    );
    let done = fixture.run(&["start"]);
    assert_fails_with(
        &done,
        &[
            "sandbox tier 'micro_vm' (the user's overrides.tier) is not available in this build yet; start with --insecure to use the process tier",
        ],
    );
    let mut command = fixture.command(&["--insecure", "start"]);
    command.env("OXYDRA_VM_BIN", fixture.path().join("no-such-vm"));
    let done = run_to_end(command);
    assert_fails_with(
        &done,
        &[
            "cannot find the guest binary",
            "no-such-vm",
            "OXYDRA_VM_BIN",
        ],
    );
}

#[test]
fn start_without_configuration_writes_a_starter_and_names_the_missing_key() {
    let fixture = Fixture::empty();
    let run = |extra: &[(&str, &str)]| {
        let mut command = std::process::Command::new(RUNNER);
        command
            .current_dir(fixture.path())
            .arg("start")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", fixture.path())
            .env("USER", "Jane Doe");
        for (k, v) in extra {
            command.env(k, v);
        }
        run_to_end(command)
    };
    let done = run(&[]);
    assert_fails_with(&done, &["OPENAI_API_KEY", "base_url", ".oxydra/agent.toml"]);
    let oxydra = fixture.path().join(".oxydra");
    assert!(oxydra.join("runner.toml").is_file());
    assert!(oxydra.join("users/jane-doe.toml").is_file());
    let agent = std::fs::read_to_string(oxydra.join("agent.toml")).unwrap();
    assert!(agent.contains("model = \"gpt-4.1-mini\""), "{agent}");

    // Other commands find the starter configuration at the default path.
    let mut check = std::process::Command::new(RUNNER);
    check
        .current_dir(fixture.path())
        .args(["config", "check"])
        .env_clear()
        .env("HOME", fixture.path())
        .env("OPENAI_API_KEY", "sk-x");
    let done = run_to_end(check);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert!(done.stdout.contains("user 'jane-doe'"), "{}", done.stdout);

    // Commands other than start do not create anything.
    let elsewhere = Fixture::empty();
    let mut status = std::process::Command::new(RUNNER);
    status
        .current_dir(elsewhere.path())
        .arg("status")
        .env_clear();
    let done = run_to_end(status);
    assert_fails_with(
        &done,
        &[
            "no runner configuration at .oxydra/runner.toml",
            "oxydra-runner start",
        ],
    );
    assert!(!elsewhere.path().join(".oxydra").exists());
}
