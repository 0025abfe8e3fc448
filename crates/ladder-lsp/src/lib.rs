//! The `.ladder` language server as a library (`ladderc lsp` runs [`serve_stdio`]). Every change
//! re-checks the document (with the files it `use`s, open editors' text taking precedence over
//! the disk) and publishes the same diagnostics as `ladderc check`.
//!
//! **What it reads.** Disk reads go through the file-access policy ([`ladder_check::FilePolicy`]):
//! a document inside one of the workspace folders the client announced is checked with that
//! folder as its project root; a document outside every folder is checked from its open text
//! alone, and its `use`s of files on disk are refused. A client that announces no folder (one
//! file opened on its own) gets the policy of `ladderc check`: the document's project. An
//! explicit [`LspOptions::root`] (`ladderc --root`) overrides all of this.
//!
//! **When it stops.** On `exit` (even while stdin stays open), when stdin closes, and when the
//! client process named in `initialize` (`processId`) is gone.
//!
//! ```no_run
//! # async fn run() {
//! ladder_lsp::serve_stdio(ladder_lsp::LspOptions::default()).await;
//! # }
//! ```

#![warn(missing_docs)]

#[doc(hidden)]
pub mod fuzzing;

use ladder_check::symbols::{
    definitions, hover, SymbolKind as LadderKind, SymbolNamespace, Symbols,
};
use ladder_check::{check_path, CheckOptions, Checked, Loader, Severity};
use ladder_syntax::{FileId, SourceFile};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tower_lsp::jsonrpc::Result;
use tower_lsp::lsp_types::*;
use tower_lsp::{Client, LanguageServer, LspService, Server};

/// Open documents by path.
type Documents = Arc<Mutex<HashMap<PathBuf, String>>>;

/// Reads open documents first, then the disk under the file-access policy of the analysed
/// document's project (regular files inside it, up to the size cap): a `use` or a URI naming
/// `/dev/zero` or `/proc/self/environ` is refused, not read.
struct Overlay(Documents, Option<ladder_check::FilePolicy>);

impl Loader for Overlay {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        if let Some(text) = self.0.lock().expect("documents lock").get(path) {
            return Ok(text.clone());
        }
        match &self.1 {
            Some(policy) => policy.read(path),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "outside the workspace",
            )),
        }
    }
}

/// The analysis of one document: the check and the symbols of every file it loaded.
struct Analysis {
    checked: Checked,
    symbols: Vec<(PathBuf, Symbols, SourceFile)>,
}

/// How the server reads files.
#[derive(Debug, Clone)]
pub struct LspOptions {
    /// The project root for every document (`ladderc --root`); `None`: the workspace folders.
    pub root: Option<PathBuf>,
    /// The size cap of every file read (`--max-file-size`).
    pub max_file_bytes: u64,
}

impl Default for LspOptions {
    fn default() -> Self {
        LspOptions {
            root: None,
            max_file_bytes: ladder_check::DEFAULT_MAX_FILE_BYTES,
        }
    }
}

/// The language server's state; build one with [`service`].
pub struct Backend {
    client: Client,
    documents: Documents,
    analyses: Mutex<HashMap<PathBuf, Arc<Analysis>>>,
    options: LspOptions,
    /// The workspace folders of `initialize`, canonical; empty when the client named none.
    folders: Mutex<Vec<PathBuf>>,
    /// Notified when the client process of `initialize` is gone.
    client_gone: Arc<tokio::sync::Notify>,
}

fn path_of(uri: &Url) -> Option<PathBuf> {
    uri.to_file_path().ok()
}

/// LSP positions count UTF-16 code units.
fn position(file: &SourceFile, offset: usize) -> Position {
    let offset = offset.min(file.text.len());
    let (line, _) = file.line_col(offset);
    let line_start = file.text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let character = file.text[line_start..offset].encode_utf16().count();
    Position::new((line - 1) as u32, character as u32)
}

fn offset(file: &SourceFile, pos: Position) -> usize {
    let mut line_start = 0;
    for _ in 0..pos.line {
        match file.text[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return file.text.len(),
        }
    }
    let line = &file.text[line_start
        ..file.text[line_start..]
            .find('\n')
            .map_or(file.text.len(), |i| line_start + i)];
    let mut units = 0;
    for (i, c) in line.char_indices() {
        if units >= pos.character as usize {
            return line_start + i;
        }
        units += c.len_utf16();
    }
    line_start + line.len()
}

fn range(file: &SourceFile, span: ladder_syntax::Span) -> Range {
    Range::new(position(file, span.start), position(file, span.end))
}

fn kind(k: LadderKind) -> SymbolKind {
    match k {
        LadderKind::Agent => SymbolKind::CLASS,
        LadderKind::Human => SymbolKind::INTERFACE,
        LadderKind::Script => SymbolKind::FUNCTION,
        LadderKind::Tool => SymbolKind::METHOD,
        LadderKind::Intent => SymbolKind::EVENT,
        LadderKind::Model => SymbolKind::CONSTANT,
        LadderKind::Type => SymbolKind::STRUCT,
        LadderKind::Mcp => SymbolKind::MODULE,
    }
}

impl Backend {
    /// The file-access policy for a document (see the crate docs); `None`: read nothing from disk.
    fn policy(&self, path: &Path) -> Option<ladder_check::FilePolicy> {
        let max = self.options.max_file_bytes;
        if let Some(root) = &self.options.root {
            return Some(
                ladder_check::FilePolicy::new(root)
                    .ok()?
                    .with_max_bytes(max),
            );
        }
        let folders = self.folders.lock().expect("folders lock").clone();
        if folders.is_empty() {
            return Some(
                ladder_check::FilePolicy::for_file(path)
                    .ok()?
                    .with_max_bytes(max),
            );
        }
        // A document not yet saved has no canonical path: its directory decides.
        let canonical = std::fs::canonicalize(path).ok().or_else(|| {
            let dir = std::fs::canonicalize(path.parent()?).ok()?;
            Some(dir.join(path.file_name()?))
        })?;
        let folder = folders
            .iter()
            .filter(|f| canonical.starts_with(f))
            .max_by_key(|f| f.as_os_str().len())?;
        Some(
            ladder_check::FilePolicy::new(folder)
                .ok()?
                .with_max_bytes(max),
        )
    }

    fn analyse(&self, path: &Path) -> Option<Arc<Analysis>> {
        let policy = self.policy(path);
        let checked = check_path(
            path,
            &Overlay(self.documents.clone(), policy),
            // The editor needs diagnostics, names and the graph, never the runtime's program.
            &CheckOptions {
                lower: false,
                ..CheckOptions::default()
            },
        )
        .ok()?;
        // The checker recovers from syntax errors item by item, so its trees hold everything
        // outside a broken item, at the offsets of the text as it is now.
        // Definitions from the trees; references from the checker's own table of every name it
        // looked up (one resolver: what the editor navigates is what the checker checked).
        let symbols = checked
            .sources
            .iter()
            .zip(&checked.files)
            .map(|((id, file), parsed)| {
                let table = Symbols {
                    definitions: definitions(parsed),
                    references: checked
                        .references
                        .iter()
                        .filter(|r| r.span.file == id)
                        .cloned()
                        .collect(),
                };
                (file.path.clone(), table, file.clone())
            })
            .collect();
        let analysis = Arc::new(Analysis { checked, symbols });
        self.analyses
            .lock()
            .expect("analyses lock")
            .insert(path.to_path_buf(), analysis.clone());
        Some(analysis)
    }

    fn analysis(&self, uri: &Url) -> Option<(PathBuf, Arc<Analysis>)> {
        let path = path_of(uri)?;
        let cached = self
            .analyses
            .lock()
            .expect("analyses lock")
            .get(&path)
            .cloned();
        let analysis = cached.or_else(|| self.analyse(&path))?;
        Some((path, analysis))
    }

    async fn publish(&self, uri: Url, version: Option<i32>) {
        let Some(path) = path_of(&uri) else { return };
        let Some(analysis) = self.analyse(&path) else {
            return;
        };
        let file = analysis.checked.sources.get(FileId(0));
        let diagnostics = analysis
            .checked
            .diagnostics
            .iter()
            .filter(|d| d.primary.span.file == FileId(0))
            .map(|d| {
                let mut message = d.message.clone();
                if !d.primary.message.is_empty() {
                    message.push_str(&format!("\n{}", d.primary.message));
                }
                if let Some(help) = &d.help {
                    message.push_str(&format!("\nhelp: {help}"));
                }
                Diagnostic {
                    range: range(file, d.primary.span),
                    severity: Some(match d.severity {
                        Severity::Error => DiagnosticSeverity::ERROR,
                        Severity::Warning => DiagnosticSeverity::WARNING,
                    }),
                    code: Some(NumberOrString::String(d.code.as_str().to_string())),
                    source: Some("ladderc".into()),
                    message,
                    related_information: Some(
                        d.secondary
                            .iter()
                            .filter_map(|l| {
                                let f = analysis.checked.sources.get(l.span.file);
                                Some(DiagnosticRelatedInformation {
                                    location: Location::new(
                                        Url::from_file_path(&f.path).ok()?,
                                        range(f, l.span),
                                    ),
                                    message: l.message.clone(),
                                })
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }
            })
            .collect();
        self.client
            .publish_diagnostics(uri, diagnostics, version)
            .await;
    }

    /// The analysis of a document, with the index of the document's own file in its symbols.
    fn document(&self, uri: &Url) -> Option<(Arc<Analysis>, usize)> {
        let (path, analysis) = self.analysis(uri)?;
        let at = analysis
            .symbols
            .iter()
            .position(|(p, _, _)| absolute(p) == absolute(&path))?;
        Some((analysis, at))
    }

    /// The symbol under the cursor, across the loaded files.
    fn target(
        &self,
        params: &TextDocumentPositionParams,
    ) -> Option<(Arc<Analysis>, String, SymbolNamespace)> {
        let (analysis, at) = self.document(&params.text_document.uri)?;
        let (_, syms, file) = &analysis.symbols[at];
        let (name, ns) = syms.at(offset(file, params.position))?;
        let (name, ns) = (name.to_string(), ns);
        Some((analysis.clone(), name, ns))
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The words that may start a line at `at`: the statements or keys of the innermost block the
/// cursor is in (its opening line says which), or the item keywords at the top level.
fn line_starts_at(text: &str, at: usize) -> Vec<&'static str> {
    let Some(&open) = ladder_syntax::open_blocks(text, at).last() else {
        return ladder_check::vocabulary::ITEMS.to_vec();
    };
    let line_start = text[..open].rfind('\n').map_or(0, |i| i + 1);
    // `limits {` inside `ladder x {` on one line: the words right before the brace decide.
    let head = text[line_start..open]
        .rsplit(['{', ',', ';'])
        .next()
        .unwrap_or("")
        .trim();
    ladder_check::vocabulary::words_in(head).unwrap_or_default()
}

/// Whether `name` can be a ladder name: an identifier that is not a keyword of an item.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !ladder_check::vocabulary::ITEMS.contains(&name)
}

#[tower_lsp::async_trait]
impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        #[allow(deprecated)] // `root_uri` and `root_path` are what older clients send.
        let uris: Vec<Url> = match (&params.workspace_folders, &params.root_uri) {
            (Some(folders), _) if !folders.is_empty() => {
                folders.iter().map(|f| f.uri.clone()).collect()
            }
            (_, Some(root)) => vec![root.clone()],
            _ => params
                .root_path
                .as_deref()
                .and_then(|p| Url::from_file_path(p).ok())
                .into_iter()
                .collect(),
        };
        *self.folders.lock().expect("folders lock") = uris
            .iter()
            .filter_map(|u| std::fs::canonicalize(u.to_file_path().ok()?).ok())
            .collect();
        if let Some(pid) = params.process_id {
            watch_client(pid, self.client_gone.clone());
        }
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Kind(
                    TextDocumentSyncKind::FULL,
                )),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                document_symbol_provider: Some(OneOf::Left(true)),
                document_formatting_provider: Some(OneOf::Left(true)),
                rename_provider: Some(OneOf::Right(RenameOptions {
                    prepare_provider: Some(true),
                    work_done_progress_options: Default::default(),
                })),
                code_action_provider: Some(CodeActionProviderCapability::Options(
                    CodeActionOptions {
                        code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
                        ..Default::default()
                    },
                )),
                completion_provider: Some(CompletionOptions {
                    trigger_characters: Some(vec![">".into(), "[".into(), " ".into(), ",".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            server_info: Some(ServerInfo {
                name: "ladderc".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
        })
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        if let Some(path) = path_of(&params.text_document.uri) {
            self.documents
                .lock()
                .expect("documents lock")
                .insert(path, params.text_document.text);
        }
        self.publish(params.text_document.uri, Some(params.text_document.version))
            .await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let Some(change) = params.content_changes.into_iter().last() else {
            return;
        };
        if let Some(path) = path_of(&params.text_document.uri) {
            self.documents
                .lock()
                .expect("documents lock")
                .insert(path, change.text);
        }
        self.publish(params.text_document.uri, Some(params.text_document.version))
            .await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        if let Some(path) = path_of(&params.text_document.uri) {
            self.documents.lock().expect("documents lock").remove(&path);
            self.analyses.lock().expect("analyses lock").remove(&path);
        }
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let Some((analysis, name, ns)) = self.target(&params.text_document_position_params) else {
            return Ok(None);
        };
        for (path, syms, file) in &analysis.symbols {
            if let Some(def) = syms.definition(&name, ns) {
                let Ok(uri) = Url::from_file_path(absolute(path)) else {
                    continue;
                };
                return Ok(Some(GotoDefinitionResponse::Scalar(Location::new(
                    uri,
                    range(file, def.name_span),
                ))));
            }
        }
        Ok(None)
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let Some((analysis, name, ns)) = self.target(&params.text_document_position) else {
            return Ok(None);
        };
        let mut locations = Vec::new();
        for (path, syms, file) in &analysis.symbols {
            let Ok(uri) = Url::from_file_path(absolute(path)) else {
                continue;
            };
            if params.context.include_declaration {
                if let Some(def) = syms.definition(&name, ns) {
                    locations.push(Location::new(uri.clone(), range(file, def.name_span)));
                }
            }
            for r in syms.references_to(&name, ns) {
                locations.push(Location::new(uri.clone(), range(file, r.span)));
            }
        }
        Ok(Some(locations))
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let Some((analysis, name, ns)) = self.target(&params.text_document_position_params) else {
            return Ok(None);
        };
        let def = analysis
            .symbols
            .iter()
            .enumerate()
            .find_map(|(i, (_, syms, _))| Some((i, syms.definition(&name, ns)?)));
        Ok(def.map(|(i, d)| Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: hover(&analysis.checked.files[i], d),
            }),
            range: None,
        }))
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let uri = &params.text_document_position.text_document.uri;
        let Some(path) = path_of(uri) else {
            return Ok(None);
        };
        let text = self
            .documents
            .lock()
            .expect("documents lock")
            .get(&path)
            .cloned()
            .unwrap_or_default();
        let file = SourceFile::new(&path, text);
        let at = offset(&file, params.text_document_position.position);
        let line_start = file.text[..at].rfind('\n').map_or(0, |i| i + 1);
        let before = file.text[line_start..at].trim_start();
        // What can come next, from the words before the cursor on this line.
        let ns = if before.ends_with("->")
            || before.ends_with("-> ")
            || before.starts_with("entry")
            || before.starts_with("consult")
        {
            Some(SymbolNamespace::Rung)
        } else if before.starts_with("tools") && before.contains('[') && !before.contains(']') {
            Some(SymbolNamespace::Tool)
        } else if before.starts_with("model ") {
            Some(SymbolNamespace::Model)
        } else if before.starts_with("mcp ") {
            Some(SymbolNamespace::Mcp)
        } else if (before.starts_with("handoff ") && !before.contains("->"))
            || before.starts_with("accepts")
        {
            Some(SymbolNamespace::Intent)
        } else {
            None
        };
        let analysis = self.analysis(uri).map(|(_, a)| a);
        let items: Vec<CompletionItem> = match (ns, analysis) {
            (Some(ns), Some(a)) => a
                .symbols
                .iter()
                .enumerate()
                .flat_map(|(i, (_, s, _))| s.names(ns).map(move |d| (i, d)))
                .map(|(i, d)| CompletionItem {
                    label: d.name.clone(),
                    kind: Some(CompletionItemKind::REFERENCE),
                    detail: Some(format!("{:?}", d.kind).to_lowercase()),
                    documentation: Some(Documentation::MarkupContent(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value: hover(&a.checked.files[i], d),
                    })),
                    ..Default::default()
                })
                .collect(),
            // Only what may start a line here: the statements of the block the cursor is in.
            _ if before.is_empty()
                || before
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                line_starts_at(&file.text, at)
                    .into_iter()
                    .map(|k| CompletionItem {
                        label: k.to_string(),
                        kind: Some(CompletionItemKind::KEYWORD),
                        ..Default::default()
                    })
                    .collect()
            }
            _ => Vec::<&str>::new()
                .iter()
                .map(|k| CompletionItem {
                    label: k.to_string(),
                    kind: Some(CompletionItemKind::KEYWORD),
                    ..Default::default()
                })
                .collect(),
        };
        Ok(Some(CompletionResponse::Array(items)))
    }

    async fn prepare_rename(
        &self,
        params: TextDocumentPositionParams,
    ) -> Result<Option<PrepareRenameResponse>> {
        let Some((analysis, document)) = self.document(&params.text_document.uri) else {
            return Ok(None);
        };
        let (_, syms, file) = &analysis.symbols[document];
        let at = offset(file, params.position);
        let span = syms
            .definitions
            .iter()
            .map(|d| d.name_span)
            .chain(syms.references.iter().map(|r| r.span))
            .find(|s| s.start <= at && at <= s.end);
        Ok(span.map(|s| PrepareRenameResponse::Range(range(file, s))))
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        if !is_identifier(&params.new_name) {
            return Err(tower_lsp::jsonrpc::Error::invalid_params(format!(
                "`{}` is not a name: letters, digits and `_`, not starting with a digit, and not an item keyword",
                params.new_name
            )));
        }
        let Some((analysis, name, ns)) = self.target(&params.text_document_position) else {
            return Ok(None);
        };
        let mut changes: HashMap<Url, Vec<TextEdit>> = HashMap::new();
        for (path, syms, file) in &analysis.symbols {
            let Ok(uri) = Url::from_file_path(absolute(path)) else {
                continue;
            };
            let spans = syms
                .definitions
                .iter()
                .filter(|d| d.name == name && d.kind.namespace() == ns)
                .map(|d| d.name_span)
                .chain(syms.references_to(&name, ns).map(|r| r.span));
            let edits: Vec<TextEdit> = spans
                .map(|s| TextEdit::new(range(file, s), params.new_name.clone()))
                .collect();
            if !edits.is_empty() {
                changes.entry(uri).or_default().extend(edits);
            }
        }
        Ok(Some(WorkspaceEdit::new(changes)))
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let Some((_, analysis)) = self.analysis(&params.text_document.uri) else {
            return Ok(None);
        };
        let sources = &analysis.checked.sources;
        let document = sources.get(FileId(0));
        let wanted = (
            offset(document, params.range.start),
            offset(document, params.range.end),
        );
        let mut actions = Vec::new();
        for d in &analysis.checked.diagnostics {
            let span = d.primary.span;
            if span.file != FileId(0) || span.end < wanted.0 || span.start > wanted.1 {
                continue;
            }
            for fix in &d.fixes {
                let mut changes: HashMap<Url, Vec<TextEdit>> = HashMap::new();
                for e in &fix.edits {
                    let file = sources.get(e.span.file);
                    let Ok(uri) = Url::from_file_path(absolute(&file.path)) else {
                        continue;
                    };
                    changes
                        .entry(uri)
                        .or_default()
                        .push(TextEdit::new(range(file, e.span), e.text.clone()));
                }
                actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                    title: fix.title.clone(),
                    kind: Some(CodeActionKind::QUICKFIX),
                    diagnostics: Some(vec![Diagnostic {
                        range: range(document, span),
                        code: Some(NumberOrString::String(d.code.as_str().to_string())),
                        message: d.message.clone(),
                        ..Default::default()
                    }]),
                    edit: Some(WorkspaceEdit::new(changes)),
                    is_preferred: Some(d.fixes.len() == 1),
                    ..Default::default()
                }));
            }
        }
        Ok(Some(actions))
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        let Some((analysis, document)) = self.document(&params.text_document.uri) else {
            return Ok(None);
        };
        let (_, syms, file) = &analysis.symbols[document];
        #[allow(deprecated)]
        let list = syms
            .definitions
            .iter()
            .map(|d| DocumentSymbol {
                name: d.name.clone(),
                detail: Some(format!("{:?}", d.kind).to_lowercase()),
                kind: kind(d.kind),
                tags: None,
                deprecated: None,
                range: range(file, d.item_span),
                selection_range: range(file, d.name_span),
                children: None,
            })
            .collect();
        Ok(Some(DocumentSymbolResponse::Nested(list)))
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        let Some(path) = path_of(&params.text_document.uri) else {
            return Ok(None);
        };
        let Some(text) = self
            .documents
            .lock()
            .expect("documents lock")
            .get(&path)
            .cloned()
        else {
            return Ok(None);
        };
        let Ok(parsed) = ladder_syntax::parse(FileId(0), &text) else {
            return Ok(None);
        };
        let formatted = ladder_syntax::format(&parsed, &text);
        if formatted == text {
            return Ok(Some(Vec::new()));
        }
        let file = SourceFile::new(&path, text.clone());
        let whole = Range::new(Position::new(0, 0), position(&file, text.len()));
        Ok(Some(vec![TextEdit::new(whole, formatted)]))
    }
}

/// The language service, for an in-process client (tests, fuzzing) or [`serve_stdio`]; the
/// `Notify` fires when the server should stop (`exit` handled, or the client process is gone).
pub fn service(
    options: LspOptions,
) -> (
    ExitWatch<LspService<Backend>>,
    tower_lsp::ClientSocket,
    Arc<tokio::sync::Notify>,
) {
    let stop = Arc::new(tokio::sync::Notify::new());
    let client_gone = stop.clone();
    let (service, socket) = LspService::new(move |client| Backend {
        client,
        documents: Arc::default(),
        analyses: Mutex::default(),
        options,
        folders: Mutex::default(),
        client_gone,
    });
    // tower-lsp only notices `exit` when the next message arrives or stdin closes; a client that
    // keeps stdin open (Neovim did, for 40 minutes) would keep the server alive. So the `exit`
    // notification itself ends the server.
    let service = ExitWatch {
        inner: service,
        exited: stop.clone(),
    };
    (service, socket, stop)
}

/// Runs the language server on stdin and stdout until `exit`, the end of stdin, or the end of
/// the client process.
pub async fn serve_stdio(options: LspOptions) {
    let (service, socket, stop) = service(options);
    tokio::select! {
        () = Server::new(tokio::io::stdin(), tokio::io::stdout(), socket).serve(service) => {}
        () = stop.notified() => {}
    }
}

/// Notifies `gone` once the process `pid` no longer exists (checked every two seconds), as the
/// LSP specification asks of a server whose client may die without closing its pipes. Only
/// where `/proc` tells (Linux); elsewhere the end of stdin stops the server.
fn watch_client(pid: u32, gone: Arc<tokio::sync::Notify>) {
    let proc_entry = PathBuf::from(format!("/proc/{pid}"));
    if !Path::new("/proc/self").exists() || !proc_entry.exists() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            if !proc_entry.exists() {
                gone.notify_one();
                return;
            }
        }
    });
}

/// Passes every message to the language service, and signals when `exit` has been handled.
pub struct ExitWatch<S> {
    inner: S,
    exited: Arc<tokio::sync::Notify>,
}

impl<S> tower_service::Service<tower_lsp::jsonrpc::Request> for ExitWatch<S>
where
    S: tower_service::Service<tower_lsp::jsonrpc::Request>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<S::Response, S::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: tower_lsp::jsonrpc::Request) -> Self::Future {
        let exit = request.method() == "exit";
        let future = self.inner.call(request);
        let exited = self.exited.clone();
        Box::pin(async move {
            let response = future.await;
            if exit {
                exited.notify_one();
            }
            response
        })
    }
}
