//! The `relay` binary: parses and checks flags, sets up logging, binds, and
//! serves until SIGINT or SIGTERM, then closes every lab and exits 0; or,
//! as `relay trace`, runs a program under trace onto a lab's stage.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use relay::Config;
use relay::config::DEFAULT_PORT;
use tokio::net::TcpListener;

/// Serves the socket-flow page and runs a lab of real sockets for each browser.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    task: Option<Task>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Subcommand, Debug)]
enum Task {
    /// Run a program of your own (a C server or client, say) under trace,
    /// and show its socket calls on the stage: `relay trace -- ./server 7001`.
    Trace(TraceArgs),
}

#[derive(clap::Args, Debug)]
struct TraceArgs {
    /// Open the page that shows the program in the default browser.
    #[arg(long)]
    open: bool,
    /// Put this program's lanes into the lab another `relay trace` opened,
    /// by the code it printed, so that a server and its client share a stage.
    #[arg(long, value_name = "CODE")]
    join: Option<String>,
    /// The port of the relay that shows the program; one is started on
    /// 127.0.0.1 if none runs there.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// The program and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "PROGRAM")]
    command: Vec<OsString>,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Where the page and its WebSocket listen. Loopback by default (only
    /// this machine can reach it); 0.0.0.0:7878 with --classroom.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Set up for a class: listen on every address, let students' nc reach
    /// lab servers, print the student URL and its QR code, and the
    /// presenter's URL; the teacher drives one shared lab that every
    /// student's page follows.
    #[arg(long)]
    classroom: bool,
    /// Open the page (the presenter's, with --classroom) in the default
    /// browser once the relay is listening.
    #[arg(long)]
    open: bool,
    /// Serve the page from this folder instead of the copy built into the
    /// binary, for front-end work.
    #[arg(long, value_name = "DIR")]
    www: Option<PathBuf>,
    /// Also let pages from this origin (such as http://localhost:8000) open labs.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Also answer requests that name this host (this machine's name on the
    /// network, say). localhost, *.localhost and IP addresses always work;
    /// any other name is refused, which keeps DNS-rebinding pages out.
    #[arg(long = "allow-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
    /// Let labs connect to this address outside this host.
    #[arg(long = "allow-connect", value_name = "HOST:PORT")]
    allowed_connect_targets: Vec<SocketAddr>,
    /// The address lab servers bind to. Loopback by default (0.0.0.0 with
    /// --classroom); 0.0.0.0 lets students on the network join a lab with nc.
    #[arg(long)]
    lab_ip: Option<IpAddr>,
    /// The ports lab servers bind to, and the only ones the capture reads:
    /// another range keeps two relays on one machine, or a service that
    /// uses 7001–7999, apart from the labs.
    #[arg(long, value_name = "LOW-HIGH", default_value = "7001-7999", value_parser = relay::config::parse_port_range)]
    lab_ports: std::ops::RangeInclusive<u16>,
    /// Do not capture segments even when the relay may.
    #[arg(long)]
    no_capture: bool,
    /// The most labs (browser tabs) the relay runs at once.
    #[arg(long, default_value_t = Config::default().labs_per_relay)]
    max_labs: u32,
    /// The most labs one computer (one browser address) may have open at once.
    #[arg(long, default_value_t = Config::default().labs_per_ip)]
    labs_per_ip: u32,
    /// Seconds after which a browser that sent nothing, not even an answer
    /// to the relay's pings, counts as gone and its lab is closed.
    #[arg(long, value_name = "SECS", default_value_t = 45, value_parser = clap::value_parser!(u64).range(3..=3600))]
    idle_timeout: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "relay=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match args.task {
        Some(Task::Trace(trace)) => {
            let mut command = trace.command.into_iter();
            let request = relay::trace::TraceRequest {
                port: trace.port,
                join: trace.join,
                open: trace.open,
                program: command
                    .next()
                    .context("name the program to trace after --")?,
                args: command.collect(),
            };
            let port = request.port;
            let status = relay::trace::run(request, || relay_in_process(port))?;
            std::process::exit(status);
        }
        None => tokio::runtime::Runtime::new()?.block_on(serve(args.serve)),
    }
}

/// A relay for `relay trace` when none runs: on loopback, with the
/// defaults, on a thread of its own until SIGINT or SIGTERM.
fn relay_in_process(port: u16) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let config = Config::default();
    if let Err(message) = config.check() {
        anyhow::bail!("{message}");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = runtime
        .block_on(TcpListener::bind(listen))
        .with_context(|| format!("could not start a relay on {listen}"))?;
    tracing::info!("started a relay at http://{listen}/ for the traced program");
    // The capture and the control socket register with the runtime's reactor.
    let relay = {
        let _inside = runtime.enter();
        let mut relay = relay::Relay::new(config);
        relay.take_traces(port);
        relay
    };
    let serving = std::thread::Builder::new()
        .name("relay".into())
        .spawn(move || {
            let served = runtime.block_on(relay.serve(listener, relay::stop_signal()));
            if let Err(error) = served {
                tracing::warn!(%error, "the relay stopped");
            }
        })?;
    Ok(serving)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listen = args.listen.unwrap_or(if args.classroom {
        SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))
    } else {
        SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))
    });
    let default_lab_ip = if args.classroom {
        IpAddr::from([0, 0, 0, 0])
    } else {
        Config::default().lab_ip
    };
    let mut allowed_hosts = args.allowed_hosts;
    if args.classroom {
        // Students' browsers may name this machine by its host name.
        allowed_hosts.extend(relay::classroom::host_name());
    }
    let mut config = Config {
        www_dir: args.www,
        allowed_origins: args.allowed_origins,
        allowed_hosts,
        allowed_connect_targets: args.allowed_connect_targets,
        lab_ip: args.lab_ip.unwrap_or(default_lab_ip),
        lab_ports: args.lab_ports,
        labs_per_relay: args.max_labs,
        labs_per_ip: args.labs_per_ip,
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout),
        capture: !args.no_capture,
        ..Config::default()
    };
    if let Err(message) = config.check() {
        eprintln!("relay: {message}");
        std::process::exit(2);
    }
    if let Some(warning) = config.fit_open_files() {
        tracing::warn!("{warning}");
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("could not listen on {listen}"))?;
    let listening = listener.local_addr()?;
    if args.classroom {
        let addresses = &config.host_addresses;
        config.classroom = Some(relay::classroom::Classroom::new(listening, addresses));
    }
    // The capture opens first, so that the relay is whole once it says where it is.
    let mut relay = relay::Relay::new(config.clone());
    relay.take_traces(listening.port());
    let url = format!("http://{listening}/");
    // The first line of stdout is the URL, so that scripts and tests can read it.
    println!("socket-flow is running: open {url}");
    if let Some(classroom) = &config.classroom {
        print_classroom(classroom);
    }
    if !listen.ip().is_loopback() {
        tracing::warn!(
            "listening on {}: anyone who can reach this machine at that address can open the \
             page and run labs on it, not only this machine's browser",
            listen
        );
    }
    if !config.lab_ip.is_loopback() {
        tracing::warn!(lab_ip = %config.lab_ip, "lab servers are reachable from the network");
    }
    if args.open {
        match &config.classroom {
            Some(classroom) => relay::open_browser(&classroom.presenter_url),
            None => relay::open_browser(&url),
        }
    }
    relay
        .serve(listener, async {
            relay::stop_signal().await;
            tracing::info!("shutting down: closing every lab");
        })
        .await?;
    Ok(())
}

/// What the teacher needs on the morning of the lesson.
fn print_classroom(classroom: &relay::classroom::Classroom) {
    println!();
    println!("Classroom mode. Students open:");
    println!();
    println!("    {}", classroom.student_url);
    println!();
    println!("{}", classroom.qr_text());
    if !classroom.reachable {
        println!(
            "(Students cannot reach this address: the relay listens on loopback, or this \
             machine has no network address. Use --listen 0.0.0.0:{}.)",
            DEFAULT_PORT
        );
    }
    println!("The teacher presents from this machine (the link is the key; keep it off the");
    println!("projector until the page is open):");
    println!();
    println!("    {}", classroom.presenter_url);
    println!();
}
