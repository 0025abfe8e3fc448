//! `ladderc mcp pull`: pin the tools of a declared MCP server as ladder declarations; and the
//! start of a ladder's MCP servers for `run`, `test --live-tools` and `serve`.

use crate::check_file;
use ladder_check::CheckOptions;
use ladder_runtime::Runtime;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Subcommand)]
pub(crate) enum McpCommand {
    /// Connect to a server the ladder declares (`mcp NAME { .. }`), list its tools and write
    /// their typed declarations to a file the ladder can `use`.
    Pull {
        /// The ladder that declares the server.
        ladder: PathBuf,
        /// The `mcp` item's name.
        server: String,
        /// Where to write (default: NAME.mcp.ladder beside the ladder).
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Pin only this tool (its name on the server); repeat for several. Default: all.
        #[arg(long = "tool", value_name = "NAME")]
        tools: Vec<String>,
    },
}

pub(crate) async fn run(command: McpCommand) -> Result<(), String> {
    match command {
        McpCommand::Pull {
            ladder,
            server,
            out,
            tools,
        } => pull(&ladder, &server, out, &tools).await,
    }
}

async fn pull(
    ladder: &Path,
    server: &str,
    out: Option<PathBuf>,
    only: &[String],
) -> Result<(), String> {
    let checked = check_file(ladder, &CheckOptions::default())
        .map_err(|e| format!("cannot read `{}`: {e}", ladder.display()))?;
    let Some(spec) = checked.mcp_server(server) else {
        let names = checked.mcp_server_names();
        return Err(if names.contains(&server.to_string()) {
            format!(
                "MCP server `{server}` is declared with errors: run `ladderc check {}`",
                ladder.display()
            )
        } else if names.is_empty() {
            format!(
                "`{}` declares no MCP server (`mcp {server} {{ command: [..] }}`)",
                ladder.display()
            )
        } else {
            format!(
                "`{}` declares no MCP server `{server}` (it declares {})",
                ladder.display(),
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    };
    let tools = ladder_mcp::pull(&spec)
        .await
        .map_err(|e| format!("MCP server `{server}`: {e}"))?;
    for wanted in only {
        if !tools.iter().any(|t| &t.name == wanted) {
            return Err(format!(
                "MCP server `{server}` has no tool `{wanted}` (it has {})",
                tools
                    .iter()
                    .map(|t| format!("`{}`", t.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let out = out.unwrap_or_else(|| {
        ladder
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{server}.mcp.ladder"))
    });
    let source = match &spec.transport {
        ladder_check::program::McpTransport::Stdio { program, args, .. } => {
            format!("`{program} {}`", args.join(" "))
        }
        ladder_check::program::McpTransport::Http { url, .. } => url.clone(),
    };
    let (text, notes) = ladder_mcp::declarations(server, &source, &tools, only);
    // In the project's layout, so that `fmt --check` passes on what pull writes.
    let text = match ladder_syntax::parse(ladder_syntax::FileId(0), &text) {
        Ok(parsed) => ladder_syntax::format(&parsed, &text),
        Err(_) => text,
    };
    std::fs::write(&out, &text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let pinned = text.matches("\ntool ").count();
    eprintln!(
        "pinned {pinned} tool{} of MCP server `{server}` in {}",
        if pinned == 1 { "" } else { "s" },
        out.display()
    );
    for n in &notes {
        eprintln!("  note: {n}");
    }
    // The path a `use` in the ladder would name: relative to the ladder's directory.
    let dir = ladder.parent().unwrap_or(Path::new(""));
    let relative = out
        .strip_prefix(dir)
        .unwrap_or(&out)
        .to_string_lossy()
        .replace('\\', "/");
    let used = checked.files.first().is_some_and(|root| {
        root.items.iter().any(|item| {
            matches!(&item.kind, ladder_syntax::ast::ItemKind::Use(path) if path.value == relative)
        })
    });
    if !used {
        eprintln!(
            "  add `use \"{relative}\"` to {} and list the tools on an agent",
            ladder.display()
        );
    }
    Ok(())
}

/// Starts the MCP servers the program's tools use (none: nothing starts) and connects them to
/// the runtime. A server that cannot start, or tools that drifted, are an error naming them.
pub(crate) async fn connect(
    runtime: Runtime,
) -> Result<(Runtime, Option<Arc<ladder_mcp::Servers>>), String> {
    let uses_mcp = runtime.program().tools.values().any(|t| {
        matches!(
            t.implementation,
            ladder_check::program::ToolImpl::Mcp { .. }
        )
    });
    if !uses_mcp {
        return Ok((runtime, None));
    }
    let servers = ladder_mcp::Servers::start(runtime.program())
        .await
        .map_err(|e| e.to_string())?;
    Ok((runtime.mcp(servers.clone()), Some(servers)))
}
