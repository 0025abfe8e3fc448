// Starts `ladderc lsp` for .ladder files. Everything else (diagnostics, go to definition,
// references, hover, completion, symbols, formatting) comes from the server.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("ladder").get("server.path") || "ladderc";
  const server = { command, args: ["lsp"] };
  client = new LanguageClient(
    "ladder",
    "ladder",
    { run: server, debug: server },
    { documentSelector: [{ scheme: "file", language: "ladder" }] }
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
