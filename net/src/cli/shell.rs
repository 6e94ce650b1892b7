//! `ZooKeeperMain`: the shell around the commands.
//!
//! One thread runs a small tokio runtime with the session's connection
//! task; the main thread drives the shell with `block_on`. Lines come from
//! a second thread (rustyline on a terminal, plain reads otherwise), so
//! that watch events are printed while the shell waits for input, as
//! zkCli's event thread prints them. While a command runs, its events are
//! printed by the main thread in the order the connection delivered them,
//! ahead of the command's own output when they came first.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{Client, ConnectString, KeeperState, WatchedEvent};
use engine::types::EventType;
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, ExternalPrinter, Helper};
use tokio::sync::mpsc;

use super::commands::{self, CliError};
use super::options::split_line;
use super::{err, out};

/// zkCli's defaults (`MyCommandOptions`).
const SERVER_DEFAULT: &str = "localhost:2181";
const TIMEOUT_MS_DEFAULT: &str = "30000";

/// Commands `history` lists: the last ten and itself.
const HISTORY_SHOWN: i32 = 10;

/// How long tab completion waits for the server.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(2);

/// Lines of history kept in the history file.
const HISTORY_LINES_MAX: usize = 1000;

/// The shell's own commands, with their option strings.
const SHELL_COMMANDS: &[(&str, &str)] = &[
    ("connect", "host:port"),
    ("history", ""),
    ("printwatches", "on|off"),
    ("quit", ""),
    ("redo", "cmdno"),
];

/// What a line of the command line said (`MyCommandOptions.parseOptions`).
struct MainOptions {
    server: String,
    timeout: String,
    read_only: bool,
    wait_for_connection: bool,
    client_configuration: Option<String>,
    command: Option<Vec<String>>,
}

fn parse_main_options(args: &[String]) -> MainOptions {
    let mut o = MainOptions {
        server: SERVER_DEFAULT.to_string(),
        timeout: TIMEOUT_MS_DEFAULT.to_string(),
        read_only: false,
        wait_for_connection: false,
        client_configuration: None,
        command: None,
    };
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        let mut value = |target: &mut String| match it.next() {
            Some(v) => {
                *target = v.clone();
                true
            }
            None => {
                // zkCli reports it and carries on with what it has.
                err(&format!("Error: no argument found for option {opt}\n"));
                false
            }
        };
        let complete = match opt.as_str() {
            "-server" => value(&mut o.server),
            "-timeout" => value(&mut o.timeout),
            "-r" => {
                o.read_only = true;
                true
            }
            "-waitforconnection" => {
                o.wait_for_connection = true;
                true
            }
            "-client-configuration" => {
                let mut c = String::new();
                let ok = value(&mut c);
                o.client_configuration = ok.then_some(c);
                ok
            }
            _ => true,
        };
        if !complete {
            return o;
        }
        if !opt.starts_with('-') {
            let mut cmd = vec![opt.clone()];
            cmd.extend(it.cloned());
            o.command = Some(cmd);
            return o;
        }
    }
    o
}

/// zkCli's `-client-configuration FILE`: a Java properties file of
/// `ZKClientConfig` keys. TLS (`zookeeper.client.secure=true`) is what it
/// configures here, from PEM stores as the Java client's
/// `zookeeper.ssl.*.type=PEM`; SASL keys are not supported.
fn client_configuration(path: &std::path::Path) -> Result<Option<client::Tls>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let props = java_properties(&text);
    let get = |k: &str| {
        props
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    for k in [
        "zookeeper.ssl.keyStore.type",
        "zookeeper.ssl.trustStore.type",
    ] {
        if let Some(t) = get(k) {
            if !t.eq_ignore_ascii_case("PEM") {
                return Err(format!("{k}={t}: corral cli reads PEM stores only"));
            }
        }
    }
    if get("zookeeper.ssl.hostnameVerification").is_some_and(|v| v.eq_ignore_ascii_case("false")) {
        return Err("zookeeper.ssl.hostnameVerification=false is not supported".into());
    }
    if !get("zookeeper.client.secure").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let trust_path = get("zookeeper.ssl.trustStore.location")
        .ok_or("zookeeper.client.secure=true needs zookeeper.ssl.trustStore.location (PEM CA certificates)")?;
    let trust = std::fs::read(trust_path).map_err(|e| format!("{trust_path}: {e}"))?;
    let identity = match get("zookeeper.ssl.keyStore.location") {
        None => None,
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("{p}: {e}"))?),
    };
    client::Tls::from_pem(&trust, identity.as_deref()).map(Some)
}

/// `java.util.Properties.load`, for what configuration files use: one
/// `key=value` (or `key: value`, `key value`) per line, `#` and `!`
/// comments, surrounding blanks trimmed.
fn java_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let cut = line
            .find(|c: char| c == '=' || c == ':' || c.is_whitespace())
            .unwrap_or(line.len());
        let key = line[..cut].trim().to_string();
        let rest = line[cut..].trim_start();
        let value = rest
            .strip_prefix(['=', ':'])
            .unwrap_or(rest)
            .trim()
            .to_string();
        out.push((key, value));
    }
    out
}

/// zkCli's usage, to stderr: every command with its options, sorted.
fn usage() {
    let mut all: Vec<(&str, &str)> = commands::COMMANDS
        .iter()
        .chain(SHELL_COMMANDS)
        .copied()
        .collect();
    all.sort();
    let mut s = String::from(
        "ZooKeeper -server host:port -client-configuration properties-file cmd args\n",
    );
    for (c, o) in all {
        s.push_str(&format!("\t{c} {o}\n"));
    }
    err(&s);
}

fn all_command_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = commands::COMMANDS
        .iter()
        .chain(SHELL_COMMANDS)
        .map(|(c, _)| *c)
        .collect();
    v.sort();
    v
}

/// `Integer.decode`: decimal, 0x/0X/# hexadecimal, 0 octal, with a sign.
fn java_decode(s: &str) -> Result<i32, CliError> {
    let bad = || {
        CliError {
        message: format!(
            "Exception in thread \"main\" java.lang.NumberFormatException: For input string: \"{s}\""
        ),
        exit_code: 1,
        fatal: true,
    }
    };
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))
        .or_else(|| rest.strip_prefix('#'))
    {
        (16, h)
    } else if rest.len() > 1 && rest.starts_with('0') {
        (8, &rest[1..])
    } else {
        (10, rest)
    };
    if digits.is_empty() || digits.starts_with(['-', '+']) {
        return Err(bad());
    }
    let v = i64::from_str_radix(digits, radix).map_err(|_| bad())?;
    let v = if neg { -v } else { v };
    i32::try_from(v).map_err(|_| bad())
}

/// Where the interactive history is kept across runs.
fn history_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CORRAL_CLI_HISTORY") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".corral_cli_history"))
}

/// A line, or the end of input.
enum Input {
    Line(String),
    /// Ctrl-C at the prompt: the line is dropped.
    Interrupted,
    Eof,
}

/// The current session, shared with tab completion.
type SessionSlot = Arc<Mutex<Option<Client>>>;

/// What comes after a command.
enum Next {
    Continue,
    Quit,
}

struct Shell {
    opts: MainOptions,
    /// From `-client-configuration` with `zookeeper.client.secure=true`.
    tls: Option<client::Tls>,
    rt: tokio::runtime::Runtime,
    host: String,
    zk: Option<Client>,
    events: Option<mpsc::UnboundedReceiver<WatchedEvent>>,
    slot: SessionSlot,
    print_watches: bool,
    history: BTreeMap<i32, String>,
    command_count: i32,
    exit_code: i32,
}

fn print_event(e: &WatchedEvent) {
    // ZooKeeperMain.printMessage: a newline before each of the two lines.
    out(&format!("\nWATCHER::\n\n{e}\n"));
}

impl Shell {
    /// Runs `fut` to completion, printing the session's events as they
    /// arrive (those that arrived before its result first).
    fn run<F: Future>(&mut self, fut: F) -> F::Output {
        let print = self.print_watches;
        let events = &mut self.events;
        self.rt.block_on(async move {
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    biased;
                    e = recv(events) => match e {
                        Some(e) if print => print_event(&e),
                        Some(_) => {}
                        None => *events = None,
                    },
                    r = &mut fut => return r,
                }
            }
        })
    }

    /// Prints the events already delivered.
    fn drain_events(&mut self) {
        if let Some(rx) = &mut self.events {
            while let Ok(e) = rx.try_recv() {
                if self.print_watches {
                    print_event(&e);
                }
            }
        }
    }

    /// `connectToZK`: closes a live session, then starts a new one.
    fn connect_to_zk(&mut self, host: &str) -> Result<(), CliError> {
        if let Some(zk) = self.zk.clone() {
            if zk.state().is_alive() {
                self.run(async { zk.close().await });
                self.drain_events();
            }
        }
        self.host = host.to_string();
        let timeout = self.opts.timeout.parse::<i32>().map_err(|_| CliError {
            message: format!(
                "Exception in thread \"main\" java.lang.NumberFormatException: For input string: \"{}\"",
                self.opts.timeout
            ),
            exit_code: 1,
            fatal: true,
        })?;
        let connect = ConnectString::parse(host).map_err(|e| CliError {
            message: format!(
                "Exception in thread \"main\" java.lang.IllegalArgumentException: {e}"
            ),
            exit_code: 1,
            fatal: true,
        })?;
        let (zk, events) = {
            let _guard = self.rt.enter();
            Client::connect_with(connect, timeout, self.opts.read_only, self.tls.clone())
        };
        self.zk = Some(zk.clone());
        *self.slot.lock().expect("session slot") = Some(zk);
        self.events = Some(events);
        if self.opts.wait_for_connection {
            self.wait_connected(timeout)?;
        }
        Ok(())
    }

    /// `-waitforconnection`: the first SyncConnected within the timeout.
    fn wait_connected(&mut self, timeout_ms: i32) -> Result<(), CliError> {
        let print = self.print_watches;
        let Some(rx) = self.events.as_mut() else {
            return Ok(());
        };
        let limit = Duration::from_millis(timeout_ms.max(0) as u64);
        let connected = self.rt.block_on(async {
            tokio::time::timeout(limit, async {
                while let Some(e) = rx.recv().await {
                    if print {
                        print_event(&e);
                    }
                    if e.event_type == EventType::None && e.state == KeeperState::SyncConnected {
                        return true;
                    }
                }
                false
            })
            .await
            .unwrap_or(false)
        });
        if connected {
            return Ok(());
        }
        if let Some(zk) = self.zk.clone() {
            self.rt.block_on(async { zk.close().await });
        }
        Err(CliError {
            message: "Exception in thread \"main\" java.io.IOException: org.apache.zookeeper.KeeperException$ConnectionLossException: KeeperErrorCode = ConnectionLoss".into(),
            exit_code: 1,
            fatal: true,
        })
    }

    fn alive(&self) -> bool {
        self.zk.as_ref().is_some_and(|z| z.state().is_alive())
    }

    fn prompt(&self) -> String {
        let state = self
            .zk
            .as_ref()
            .map(|z| z.state().name())
            .unwrap_or("CLOSED");
        format!("[zk: {}({}) {}] ", self.host, state, self.command_count)
    }

    /// `processCmd`: runs a command and records its exit code; errors go
    /// to stderr. A fatal error ends the process, as an uncaught Java
    /// exception ends zkCli.
    fn process_cmd(&mut self, args: Vec<String>) -> Next {
        match self.process_zk_cmd(args) {
            // zkCli exits inside processZKCmd, with the previous command's
            // code.
            Ok(Next::Quit) => Next::Quit,
            Ok(Next::Continue) => {
                self.exit_code = 0;
                Next::Continue
            }
            Err(e) => {
                self.exit_code = e.exit_code;
                err(&format!("{}\n", e.message));
                if e.fatal {
                    self.finish_quietly();
                    std::process::exit(e.exit_code);
                }
                Next::Continue
            }
        }
    }

    /// `processZKCmd`.
    fn process_zk_cmd(&mut self, args: Vec<String>) -> Result<Next, CliError> {
        let Some(cmd) = args.first().cloned() else {
            usage();
            return Err(CliError::new("No command entered"));
        };
        let shell_command = SHELL_COMMANDS.iter().any(|(c, _)| *c == cmd);
        if !shell_command && !commands::is_command(&cmd) {
            usage();
            return Err(CliError {
                message: format!("Command not found: Command not found {cmd}"),
                exit_code: 127,
                fatal: false,
            });
        }
        match cmd.as_str() {
            "quit" => {
                if let Some(zk) = self.zk.clone() {
                    self.run(async { zk.close().await });
                    self.drain_events();
                }
                return Ok(Next::Quit);
            }
            "redo" if args.len() >= 2 => {
                let i = java_decode(&args[1])?;
                if self.command_count <= i || i < 0 {
                    return Err(CliError::new("Command index out of range"));
                }
                let line = self.history.get(&i).cloned().unwrap_or_default();
                let words = split_line(&line);
                if words.first().map(String::as_str) == Some("redo") {
                    return Err(CliError::new("No redoing redos"));
                }
                self.history.insert(self.command_count, line);
                if !words.is_empty() {
                    if let Next::Quit = self.process_cmd(words) {
                        return Ok(Next::Quit);
                    }
                }
            }
            "history" => {
                let mut s = String::new();
                for i in (self.command_count - HISTORY_SHOWN).max(0)..=self.command_count {
                    let line = self.history.get(&i).map(String::as_str).unwrap_or("null");
                    s.push_str(&format!("{i} - {line}\n"));
                }
                out(&s);
            }
            "printwatches" => {
                if args.len() == 1 {
                    let on = if self.print_watches { "on" } else { "off" };
                    out(&format!("printwatches is {on}\n"));
                } else {
                    self.print_watches = args[1] == "on";
                }
            }
            "connect" => {
                let host = args.get(1).cloned().unwrap_or_else(|| self.host.clone());
                self.connect_to_zk(&host)?;
            }
            _ => {}
        }
        if !self.alive() {
            out("Not connected\n");
            return Ok(Next::Continue);
        }
        if commands::is_command(&cmd) {
            let zk = self.zk.clone().expect("alive implies a session");
            self.run(async { commands::exec(&zk, &args).await })?;
        }
        Ok(Next::Continue)
    }

    /// `executeLine`.
    fn execute_line(&mut self, line: &str) -> Next {
        if line.is_empty() {
            return Next::Continue;
        }
        let words = split_line(line);
        self.history.insert(self.command_count, line.to_string());
        // A line with no word at all (a lone quote): zkCli's parser keeps
        // the previous line's words and runs that command again; running
        // nothing is kinder.
        let next = if words.is_empty() {
            Next::Continue
        } else {
            self.process_cmd(words)
        };
        self.command_count += 1;
        next
    }

    /// At the end of input: the session is closed without a word, where
    /// zkCli's JVM simply exits and leaves it to expire.
    fn finish_quietly(&mut self) {
        if let Some(zk) = self.zk.take() {
            if zk.state().is_alive() {
                self.rt.block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(5), zk.close()).await;
                });
            }
        }
    }

    fn one_shot(&mut self, args: Vec<String>) -> i32 {
        self.process_cmd(args);
        let code = self.exit_code;
        self.finish_quietly();
        code
    }

    fn interactive(&mut self) -> i32 {
        out("Welcome to ZooKeeper!\n");
        let tty = std::io::stdin().is_terminal();
        // zkCli announces whether it found JLine; scripts that drive it
        // through a pipe expect "disabled".
        out(if tty {
            "JLine support is enabled\n"
        } else {
            "JLine support is disabled\n"
        });
        let (input_tx, mut input_rx) = mpsc::unbounded_channel();
        let (prompt_tx, printer) = if tty {
            let (p, printer) =
                spawn_readline(self.slot.clone(), self.rt.handle().clone(), input_tx);
            (Some(p), printer)
        } else {
            spawn_reader(input_tx);
            (None, None)
        };
        let mut printer = printer;
        loop {
            if let Some(p) = &prompt_tx {
                if p.send(self.prompt()).is_err() {
                    break;
                }
            }
            // Idle: print events while waiting for the next line.
            let print = self.print_watches;
            let events = &mut self.events;
            let input = self.rt.block_on(async {
                loop {
                    tokio::select! {
                        e = recv(events) => match e {
                            Some(e) if print => {
                                let text = format!("\nWATCHER::\n\n{e}\n");
                                match printer.as_mut() {
                                    Some(p) => { let _ = p.print(text); }
                                    None => out(&text),
                                }
                            }
                            Some(_) => {}
                            None => *events = None,
                        },
                        line = input_rx.recv() => return line.unwrap_or(Input::Eof),
                    }
                }
            });
            let line = match input {
                Input::Line(l) => l,
                Input::Interrupted => continue,
                Input::Eof => break,
            };
            if let Next::Quit = self.execute_line(&line) {
                return self.exit_code;
            }
        }
        let code = self.exit_code;
        self.finish_quietly();
        code
    }
}

/// The next event, or never if there is no session.
async fn recv(events: &mut Option<mpsc::UnboundedReceiver<WatchedEvent>>) -> Option<WatchedEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads stdin line by line on its own thread (zkCli without JLine).
fn spawn_reader(tx: mpsc::UnboundedSender<Input>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lock.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Input::Eof);
                    return;
                }
                Ok(_) => {
                    while matches!(buf.last(), Some(b'\n' | b'\r')) {
                        buf.pop();
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send(Input::Line(line)).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

type Printer = Box<dyn ExternalPrinter + Send>;

/// Runs rustyline on its own thread: it reads one line per prompt it is
/// sent. Returns the prompt channel and a printer for events that arrive
/// while a line is being edited.
fn spawn_readline(
    slot: SessionSlot,
    rt: tokio::runtime::Handle,
    tx: mpsc::UnboundedSender<Input>,
) -> (std::sync::mpsc::Sender<String>, Option<Printer>) {
    let (prompt_tx, prompt_rx) = std::sync::mpsc::channel::<String>();
    let (printer_tx, printer_rx) = std::sync::mpsc::channel::<Option<Printer>>();
    std::thread::spawn(move || {
        // List completions as JLine (and bash) do, rather than cycling.
        let config = rustyline::Config::builder()
            .completion_type(rustyline::CompletionType::List)
            .max_history_size(HISTORY_LINES_MAX)
            .map(|b| b.build())
            .unwrap_or_default();
        let mut rl: Editor<Completion, FileHistory> = match Editor::with_config(config) {
            Ok(rl) => rl,
            Err(e) => {
                err(&format!("corral cli: no line editing: {e}\n"));
                let _ = printer_tx.send(None);
                return spawn_reader(tx);
            }
        };
        rl.set_helper(Some(Completion { slot, rt }));
        let file = history_file();
        if let Some(f) = &file {
            // A missing file is the first run.
            let _ = rl.load_history(f);
        }
        let printer = rl
            .create_external_printer()
            .ok()
            .map(|p| Box::new(p) as Printer);
        let _ = printer_tx.send(printer);
        while let Ok(prompt) = prompt_rx.recv() {
            let input = match rl.readline(&prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = rl.add_history_entry(line.as_str());
                        if let Some(f) = &file {
                            let _ = rl.append_history(f);
                        }
                    }
                    Input::Line(line)
                }
                Err(rustyline::error::ReadlineError::Interrupted) => Input::Interrupted,
                Err(_) => Input::Eof,
            };
            let eof = matches!(input, Input::Eof);
            if tx.send(input).is_err() || eof {
                return;
            }
        }
    });
    let printer = printer_rx.recv().unwrap_or(None);
    (prompt_tx, printer)
}

/// Tab completion: command names for the first word, znode paths (asked
/// of the server) for a word starting with '/'. Returns where the
/// completed word starts and the candidates, sorted.
pub async fn complete(zk: Option<&Client>, line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = &line[..pos.min(line.len())];
    let start = before
        .char_indices()
        .rfind(|(_, c)| c.is_whitespace())
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let word = &before[start..];
    if before[..start].trim().is_empty() {
        let names = all_command_names()
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(str::to_string)
            .collect();
        return (start, names);
    }
    let (dir, prefix) = match word.rfind('/') {
        Some(0) => ("/", &word[1..]),
        Some(i) if word.starts_with('/') => (&word[..i], &word[i + 1..]),
        _ => return (start, Vec::new()),
    };
    let Some(zk) = zk.filter(|z| z.state().is_alive()) else {
        return (start, Vec::new());
    };
    if client::connect_string::validate_path(dir).is_err() {
        return (start, Vec::new());
    }
    let mut children = match zk.get_children(dir, false, false).await {
        Ok((c, _)) => c,
        Err(_) => return (start, Vec::new()),
    };
    children.sort();
    let found = children
        .into_iter()
        .filter(|c| c.starts_with(prefix))
        .map(|c| engine::path::join(dir, &c))
        .collect();
    (start, found)
}

/// rustyline's side of `complete`, with the current session.
struct Completion {
    slot: SessionSlot,
    rt: tokio::runtime::Handle,
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let zk = self.slot.lock().expect("session slot").clone();
        // The timer must be made inside the runtime, not on this thread.
        let (start, found) = self
            .rt
            .block_on(async {
                tokio::time::timeout(COMPLETION_TIMEOUT, complete(zk.as_ref(), line, pos)).await
            })
            .unwrap_or((pos, Vec::new()));
        let pairs = found
            .into_iter()
            .map(|s| Pair {
                display: s.clone(),
                replacement: s,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Helper for Completion {}

/// `ZooKeeperMain.main`.
pub fn main(args: Vec<String>) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-help") {
        usage();
        return 0;
    }
    let opts = parse_main_options(&args);
    let tls = match &opts.client_configuration {
        None => None,
        Some(path) => match client_configuration(std::path::Path::new(path)) {
            Ok(tls) => tls,
            Err(e) => {
                err(&format!("corral cli: -client-configuration {path}: {e}\n"));
                return 1;
            }
        },
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("corral-cli")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            err(&format!("corral cli: cannot start: {e}\n"));
            return 1;
        }
    };
    let server = opts.server.clone();
    let command = opts.command.clone();
    let mut shell = Shell {
        opts,
        tls,
        rt,
        host: String::new(),
        zk: None,
        events: None,
        slot: Arc::new(Mutex::new(None)),
        print_watches: true,
        history: BTreeMap::new(),
        command_count: 0,
        exit_code: 0,
    };
    out(&format!("Connecting to {server}\n"));
    if let Err(e) = shell.connect_to_zk(&server) {
        err(&format!("{}\n", e.message));
        return e.exit_code;
    }
    match command {
        Some(args) => shell.one_shot(args),
        None => shell.interactive(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_forms() {
        let p = java_properties(
            "# comment\n! also\nzookeeper.client.secure=true\n a : b \nc d\nempty=\n",
        );
        assert_eq!(
            p,
            vec![
                ("zookeeper.client.secure".into(), "true".into()),
                ("a".into(), "b".into()),
                ("c".into(), "d".into()),
                ("empty".into(), "".into()),
            ]
        );
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn main_options_stop_at_the_command() {
        let o = parse_main_options(&strings(&[
            "-server", "h:1/app", "-timeout", "5000", "-r", "ls", "-s", "/",
        ]));
        assert_eq!(o.server, "h:1/app");
        assert_eq!(o.timeout, "5000");
        assert!(o.read_only);
        assert_eq!(o.command.unwrap(), ["ls", "-s", "/"]);
        let o = parse_main_options(&strings(&["-server"]));
        assert_eq!(o.server, SERVER_DEFAULT);
        assert!(o.command.is_none());
    }

    #[test]
    fn redo_numbers_decode_as_java_integers() {
        assert_eq!(java_decode("12").unwrap(), 12);
        assert_eq!(java_decode("0x1f").unwrap(), 31);
        assert_eq!(java_decode("#10").unwrap(), 16);
        assert_eq!(java_decode("010").unwrap(), 8);
        assert_eq!(java_decode("-3").unwrap(), -3);
        assert!(java_decode("x").unwrap_err().fatal);
        assert!(java_decode("").is_err());
    }

    #[test]
    fn usage_lists_every_command_once() {
        let names = all_command_names();
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(names, dedup);
        assert!(names.contains(&"addWatch") && names.contains(&"redo"));
    }
}
