// A Markdown subset rendered to DOM nodes: every character of the source ends up in a text
// node (model output can never become HTML), then the structure is built around it.
// Blocks: fenced code, headings, lists, block quotes, paragraphs. Inline: `code`,
// **bold**, *italic*, [links](https://…) and bare http(s) URLs.

const FENCE = /^\s*(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const QUOTE = /^\s*>\s?(.*)$/;
const ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
const INLINE = new RegExp(
  [
    "(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)", // 1,2 code
    "\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*", // 3 bold
    "(?<![\\w])__(?=\\S)([\\s\\S]*?\\S)__(?![\\w])", // 4 bold
    "\\*(?=[^\\s*])([^*]*?[^\\s*])\\*", // 5 italic
    "(?<![\\w])_(?=[^\\s_])([^_]*?[^\\s_])_(?![\\w])", // 6 italic
    "\\[([^\\]\\n]+)\\]\\(([^)\\s]+)\\)", // 7,8 link
    "(https?:\\/\\/[^\\s<>()]*[^\\s<>().,;:!?'\"])", // 9 bare URL
  ].join("|"),
  "g",
);
const SAFE_URL = /^(https?:\/\/|mailto:)/i;

function node(tag, ...children) {
  const el = document.createElement(tag);
  el.append(...children);
  return el;
}

function link(text, url) {
  if (!SAFE_URL.test(url)) return document.createTextNode(text === url ? url : `${text} (${url})`);
  const a = node("a", ...inline(text));
  a.href = url;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  return a;
}

/** Inline Markdown → a list of nodes. */
export function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    last = m.index + m[0].length;
    if (m[2] !== undefined) out.push(node("code", m[2]));
    else if (m[3] !== undefined || m[4] !== undefined) out.push(node("strong", ...inline(m[3] ?? m[4])));
    else if (m[5] !== undefined || m[6] !== undefined) out.push(node("em", ...inline(m[5] ?? m[6])));
    else if (m[7] !== undefined) out.push(link(m[7], m[8]));
    else out.push(link(m[9], m[9]));
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

function paragraph(lines) {
  const p = document.createElement("p");
  lines.forEach((line, i) => {
    if (i > 0) p.append(document.createElement("br"));
    p.append(...inline(line));
  });
  return p;
}

/** Markdown → a DocumentFragment. An unclosed code fence (mid-stream) renders as code. */
export function renderMarkdown(source) {
  const lines = String(source).replace(/\r\n?/g, "\n").split("\n");
  const out = document.createDocumentFragment();
  let para = [];
  const flush = () => {
    if (para.length) out.append(paragraph(para));
    para = [];
  };
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const body = [];
      for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence[1]); i += 1) {
        body.push(lines[i]);
      }
      i += 1; // the closing fence
      const code = node("code", body.join("\n"));
      if (fence[2]) code.className = `language-${fence[2]}`;
      out.append(node("pre", code));
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flush();
      out.append(node(`h${Math.min(heading[1].length + 2, 6)}`, ...inline(heading[2])));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      flush();
      const quoted = [];
      for (; i < lines.length && QUOTE.test(lines[i]); i += 1) quoted.push(QUOTE.exec(lines[i])[1]);
      out.append(node("blockquote", renderMarkdown(quoted.join("\n"))));
      continue;
    }
    const item = ITEM.exec(line);
    if (item) {
      flush();
      const ordered = /\d/.test(item[1]);
      const list = document.createElement(ordered ? "ol" : "ul");
      for (; i < lines.length; i += 1) {
        const next = ITEM.exec(lines[i]);
        if (!next || /\d/.test(next[1]) !== ordered) break;
        list.append(node("li", ...inline(next[2])));
      }
      out.append(list);
      continue;
    }
    if (line.trim() === "") flush();
    else para.push(line);
    i += 1;
  }
  flush();
  return out;
}
