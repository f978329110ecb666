// The parts of CodeMirror 6 the cnndsl serve page uses, bundled into one offline file.
export {EditorView, keymap, lineNumbers, highlightActiveLine, drawSelection} from "@codemirror/view";
export {EditorState} from "@codemirror/state";
export {basicSetup} from "codemirror";
export {setDiagnostics, lintGutter} from "@codemirror/lint";
export {StreamLanguage, HighlightStyle, syntaxHighlighting} from "@codemirror/language";
export {tags} from "@lezer/highlight";
