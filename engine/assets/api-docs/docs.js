// Renders /v1/openapi.json as a list of operations. Everything is built
// with DOM calls and textContent, never innerHTML: the document is ours,
// but the page stays safe even if it were not.
"use strict";
(function () {
  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  };
  let spec;
  const resolve = (s) => {
    if (s && s.$ref) return spec.components.schemas[s.$ref.split("/").pop()] || {};
    return s || {};
  };
  const typeName = (s) => {
    if (!s) return "";
    if (s.$ref) return s.$ref.split("/").pop();
    if (s.oneOf) return s.oneOf.map(typeName).join(" | ");
    if (s.allOf) return s.allOf.map(typeName).join(" & ");
    if (Array.isArray(s.type)) return s.type.join(" | ");
    if (s.type === "array") return typeName(s.items) + "[]";
    return s.type || (s.enum ? "enum" : "object");
  };
  const schemaTable = (schema, depth) => {
    const s = resolve(schema);
    const props = s.properties || {};
    if (!Object.keys(props).length) return el("p", {}, el("code", {}, typeName(schema)));
    const required = new Set(s.required || []);
    const table = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "description")));
    for (const [name, p] of Object.entries(props)) {
      const desc = el("td", {}, (resolve(p).description || p.description || "") + (p.enum ? " (" + p.enum.join(", ") + ")" : ""));
      if (depth < 2 && (p.$ref || (p.items && p.items.$ref))) {
        const inner = el("details", {}, el("summary", {}, typeName(p)), schemaTable(p.items || p, depth + 1));
        desc.append(inner);
      }
      table.append(el("tr", {}, el("td", {}, el("code", {}, name + (required.has(name) ? "" : "?"))), el("td", {}, typeName(p)), desc));
    }
    return table;
  };
  const render = () => {
    const ops = document.getElementById("ops");
    const toc = document.getElementById("toc");
    ops.replaceChildren();
    toc.replaceChildren();
    document.getElementById("version").textContent = spec.info.version;
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const id = (op.operationId || method + path).replace(/[^A-Za-z0-9_-]/g, "_");
        toc.append(el("a", { href: "#" + id }, op.operationId || path));
        const section = el("section", { class: "op", id, "data-text": (method + " " + path + " " + (op.summary || "")).toLowerCase() },
          el("h2", {}, el("span", { class: "method " + method }, method), " ", el("code", {}, path)),
          el("p", {}, op.summary || ""));
        if (op.description && op.description !== op.summary) section.append(el("p", {}, op.description));
        if (op.parameters && op.parameters.length) {
          const t = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description")));
          for (const p of op.parameters) t.append(el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, typeName(p.schema)), el("td", {}, p.description || "")));
          section.append(t);
        }
        if (op.requestBody) {
          for (const [media, body] of Object.entries(op.requestBody.content || {})) {
            section.append(el("h3", {}, "Body (" + media + ")"), schemaTable(body.schema, 0));
          }
        }
        const responses = el("details", {}, el("summary", {}, "Responses"));
        for (const [status, r] of Object.entries(op.responses || {})) {
          responses.append(el("h4", {}, status + " " + (r.description || "")));
          for (const [media, body] of Object.entries(r.content || {})) {
            responses.append(el("p", {}, el("code", {}, media)), schemaTable(body.schema, 0));
          }
        }
        section.append(responses);
        ops.append(section);
      }
    }
  };
  document.getElementById("filter").addEventListener("input", (e) => {
    const q = e.target.value.toLowerCase();
    for (const s of document.querySelectorAll("section.op")) s.hidden = q && !s.dataset.text.includes(q);
  });
  fetch("/v1/openapi.json").then((r) => r.json()).then((d) => { spec = d; render(); })
    .catch((e) => { document.getElementById("ops").textContent = "Cannot load the document: " + e; });
})();
