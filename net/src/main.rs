//! `corral`: a coordination server that speaks Apache ZooKeeper's protocol.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use net::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "corral",
    version,
    about = "A ZooKeeper-compatible coordination server, thread-per-core."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server. With no options: standalone on port 2181, data in ./corral-data.
    Server(ServerArgs),
    /// Inspect the write-ahead log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Inspect snapshots.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Migrate an Apache ZooKeeper data directory (snapshots and transaction logs) into a corral data directory.
    ImportZk(ImportZkArgs),
    /// A zkCli-compatible client shell: `corral cli [-server host:port[/chroot]] [-timeout ms] [cmd args...]`.
    #[command(disable_help_flag = true)]
    Cli {
        /// zkCli's own options and command, passed through untouched.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args)]
struct ImportZkArgs {
    /// ZooKeeper's dataDir (the directory holding version-2/), or version-2 itself.
    #[arg(long, value_name = "DIR")]
    zk_data_dir: PathBuf,
    /// ZooKeeper's dataLogDir, if its transaction logs are kept apart from dataDir.
    #[arg(long, value_name = "DIR")]
    zk_data_log_dir: Option<PathBuf>,
    /// corral's data directory to create (must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Write into a non-empty data directory, deleting corral's snapshots and log segments there.
    #[arg(long)]
    force: bool,
    /// ZooKeeper ran with zookeeper.extendedTypesEnabled (TTL nodes); run corral with --extended-types too.
    #[arg(long)]
    extended_types: bool,
    /// Write the result even if the rebuilt tree's digest disagrees with the one ZooKeeper logged.
    #[arg(long)]
    ignore_digest_mismatch: bool,
}

#[derive(Subcommand)]
enum LogCommand {
    /// Print every transaction of a log directory (a data dir or its log/ dir), like ZooKeeper's LogFormatter.
    Dump {
        dir: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Print a snapshot's zxid, sessions and znodes, like ZooKeeper's SnapshotFormatter.
    Inspect {
        file: PathBuf,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// An Apache ZooKeeper zoo.cfg to read (clientPort, dataDir, tickTime, ...).
    #[arg(long, value_name = "PATH")]
    zoo_cfg: Option<PathBuf>,
    /// Client port (overrides zoo.cfg's clientPort).
    #[arg(long, value_name = "PORT")]
    client_port: Option<u16>,
    /// Data directory (overrides zoo.cfg's dataDir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Cores to run on, one executor each (default: all online cores).
    #[arg(long, value_name = "N")]
    cores: Option<usize>,
    /// tickTime in milliseconds (overrides zoo.cfg).
    #[arg(long, value_name = "MS")]
    tick_time: Option<u64>,
    /// Four-letter words to allow, comma separated, or "*" (overrides zoo.cfg).
    #[arg(long, value_name = "LIST")]
    four_letter_words: Option<String>,
    /// Enable TTL nodes (zookeeper.extendedTypesEnabled).
    #[arg(long)]
    extended_types: bool,
    /// How often empty containers and expired TTL nodes are removed, in ms.
    #[arg(long, value_name = "MS")]
    container_check_interval: Option<u64>,
    /// Transactions between snapshots (zoo.cfg snapCount).
    #[arg(long, value_name = "N")]
    snap_count: Option<u64>,
    /// Size of each preallocated log segment in KiB (zoo.cfg preAllocSize).
    #[arg(long, value_name = "KIB")]
    pre_alloc_size: Option<usize>,
    /// Admin server port (overrides zoo.cfg's admin.serverPort; default 8080).
    #[arg(long, value_name = "PORT")]
    admin_port: Option<u16>,
    /// Admin server address (overrides zoo.cfg's admin.serverAddress).
    #[arg(long, value_name = "IP")]
    admin_address: Option<std::net::IpAddr>,
    /// Do not start the admin server (zoo.cfg admin.enableServer=false).
    #[arg(long)]
    no_admin_server: bool,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn server(args: ServerArgs) -> ExitCode {
    init_logs(args.log_format);
    let (mut config, warnings) = match &args.zoo_cfg {
        Some(p) => match Config::load(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("corral: configuration error: {e}");
                return ExitCode::from(2);
            }
        },
        None => (Config::default(), Vec::new()),
    };
    for w in warnings {
        tracing::warn!("{w}");
    }
    if let Some(p) = args.client_port {
        config.client_port = p;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(c) = args.cores {
        config.cores = c;
    }
    if let Some(t) = args.tick_time {
        config.tick_time_ms = t.max(1);
    }
    if let Some(w) = args.four_letter_words {
        config.four_letter_words = w.split(',').map(|s| s.trim().to_string()).collect();
    }
    if args.extended_types {
        config.extended_types = true;
    }
    if let Some(ms) = args.container_check_interval {
        config.container_check_interval_ms = ms;
    }
    if let Some(n) = args.snap_count {
        config.snap_count = n.max(2);
    }
    if let Some(kib) = args.pre_alloc_size {
        config.pre_alloc_bytes = kib * 1024;
    }
    if let Some(p) = args.admin_port {
        config.admin_server_port = p;
    }
    if let Some(a) = args.admin_address {
        config.admin_server_address = a;
    }
    if args.no_admin_server {
        config.admin_enable_server = false;
    }
    let tls = match config.tls.as_ref().map(net::tls::server_config).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("corral: configuration error: TLS: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    match net::server::run(config, tls) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("corral stopped: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn import_zk(a: ImportZkArgs) -> anyhow::Result<()> {
    let opts = net::import_zk::Options {
        zk_data_dir: a.zk_data_dir,
        zk_data_log_dir: a.zk_data_log_dir,
        data_dir: a.data_dir,
        force: a.force,
        extended_types: a.extended_types,
        ignore_digest_mismatch: a.ignore_digest_mismatch,
    };
    let summary = net::import_zk::run(&opts)?;
    println!("{summary}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let tool = match cli.command {
        Command::Server(a) => return server(a),
        Command::Cli { args } => return ExitCode::from(net::cli::main(args).clamp(0, 255) as u8),
        Command::Log {
            command: LogCommand::Dump { dir, json },
        } => net::tools::log_dump(&dir, json),
        Command::Snapshot {
            command: SnapshotCommand::Inspect { file, json },
        } => net::tools::snapshot_inspect(&file, json),
        Command::ImportZk(a) => import_zk(a),
    };
    match tool {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corral: {e:#}");
            ExitCode::from(1)
        }
    }
}
