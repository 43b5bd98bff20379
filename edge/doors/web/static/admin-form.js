// Settings forms generated from the config's JSON schema: titles, descriptions, limits, enums; secrets as
// password fields that are never filled in. A binding is {element, read(), mark(path)}: `read` gives the
// value to send, `mark` names each input by its dotted config path so the server's errors land beside it.
import { el } from "/static/common.js";
import { _ } from "/static/i18n.js";

let uid = 0;

export function resolve(schema, node) {
  let current = node || {};
  while (current.$ref || (current.allOf && current.allOf.length === 1)) {
    const ref = current.$ref || current.allOf[0].$ref;
    const resolved = schema.$defs[ref.split("/").pop()];
    current = { ...resolved, ...current, $ref: undefined, allOf: undefined, title: current.title || resolved.title, description: current.description || resolved.description };
  }
  return current;
}

// The schema node of a dotted path from the root (`stream.high`, `box.name`).
export function nodeAt(schema, path) {
  let node = resolve(schema, schema);
  for (const part of path.split(".")) node = resolve(schema, node.properties[part]);
  return node;
}

function defaultOf(schema, node) {
  const resolved = resolve(schema, node);
  if (resolved.default !== undefined) return structuredClone(resolved.default);
  if (resolved.properties) {
    return Object.fromEntries(Object.entries(resolved.properties).map(([key, child]) => [key, defaultOf(schema, child)]));
  }
  if (resolved.type === "array") return [];
  if (resolved.type === "boolean") return false;
  return resolved.type === "string" ? "" : null;
}

function errorSlot() {
  return el("p", { class: "error", "data-error": "" });
}

function limits(node) {
  const notes = [];
  if (node.minimum !== undefined) notes.push(`≥ ${node.minimum}`);
  if (node.exclusiveMinimum !== undefined) notes.push(`> ${node.exclusiveMinimum}`);
  if (node.maximum !== undefined) notes.push(`≤ ${node.maximum}`);
  return notes.join(", ");
}

function scalar(schema, node, value, context) {
  const id = `f${++uid}`;
  const title = node.title ? _(node.title) : "";
  let input;
  let read;
  if (node.enum) {
    input = el("select", { id }, ...node.enum.map((option) => el("option", { value: option, text: option, selected: option === value })));
    read = () => input.value;
  } else if (node.type === "boolean") {
    input = el("input", { id, type: "checkbox", checked: Boolean(value) });
    read = () => input.checked;
  } else if (node.type === "integer" || node.type === "number") {
    const min = node.minimum ?? node.exclusiveMinimum;
    input = el("input", { id, type: "number", inputmode: node.type === "integer" ? "numeric" : "decimal", step: node.type === "integer" ? 1 : "any", min, max: node.maximum, value: value ?? "" });
    read = () => (input.value.trim() === "" ? null : Number(input.value));
  } else if (node.type === "array") {
    input = el("textarea", { id, rows: Math.max(2, (value || []).length + 1) });
    input.value = (value || []).join("\n");
    read = () => input.value.split("\n").map((line) => line.trim()).filter(Boolean);
  } else if (node.writeOnly) {
    const isSet = context.secretsSet.has(context.path);
    input = el("input", { id, type: "password", autocomplete: "new-password", placeholder: isSet ? _("set: leave empty to keep it") : _("not set") });
    read = () => input.value;
  } else {
    input = el("input", { id, type: "text", value: value ?? "", maxlength: node.maxLength, list: context.datalist });
    read = () => input.value;
  }
  const hint = [node.description ? _(node.description) : "", node.type === "array" ? _("One per line.") : "", limits(node)].filter(Boolean).join(" ");
  const label = el("label", { for: id, text: title });
  const wrap = el("div", { class: `field ${node.type === "boolean" ? "check" : ""}` }, label, input, hint ? el("p", { class: "hint", text: hint }) : null, errorSlot());
  return { element: wrap, read, mark: (path) => wrap.setAttribute("data-path", path) };
}

function objectForm(schema, node, value, context, legend = true) {
  const fieldset = el("fieldset", { class: "group" });
  if (legend && node.title) fieldset.append(el("legend", { text: _(node.title) }));
  if (legend && node.description) fieldset.append(el("p", { class: "hint", text: _(node.description) }));
  fieldset.append(errorSlot());
  const children = Object.entries(node.properties || {})
    .filter(([key]) => !context.hidden.has(`${context.path}.${key}`))
    .map(([key, child]) => {
      const binding = field(schema, child, (value || {})[key], { ...context, path: `${context.path}.${key}`, key });
      fieldset.append(binding.element);
      return [key, binding];
    });
  return {
    element: fieldset,
    read: () => Object.fromEntries(children.map(([key, binding]) => [key, binding.read()])),
    mark: (path) => {
      fieldset.setAttribute("data-path", path);
      for (const [key, binding] of children) binding.mark(`${path}.${key}`);
    },
  };
}

function listForm(schema, node, value, context) {
  const itemNode = resolve(schema, node.items);
  const fieldset = el("fieldset", { class: "group list" }, el("legend", { text: node.title ? _(node.title) : "" }));
  if (node.description) fieldset.append(el("p", { class: "hint", text: _(node.description) }));
  fieldset.append(errorSlot());
  const items = el("div", { class: "items" });
  const add = el("button", { type: "button", class: "add", text: _("Add") });
  fieldset.append(items, add);
  let bindings = [];
  const append = (itemValue, origin) => {
    const binding = objectForm(schema, itemNode, itemValue, { ...context, path: `${context.path}.${bindings.length}` }, false);
    const entry = { binding, origin };
    const remove = el("button", { type: "button", class: "remove", text: _("Remove") });
    remove.addEventListener("click", () => {
      bindings = bindings.filter((other) => other !== entry);
      binding.element.remove();
    });
    binding.element.classList.add("item");
    binding.element.append(remove);
    items.append(binding.element);
    bindings.push(entry);
  };
  (value || []).forEach((itemValue, index) => append(itemValue, index));
  add.addEventListener("click", () => append(defaultOf(schema, itemNode), null));
  return {
    element: fieldset,
    read: () => bindings.map(({ binding, origin }) => ({ ...binding.read(), ...(origin === null ? {} : { __origin__: origin }) })),
    mark: (path) => {
      fieldset.setAttribute("data-path", path);
      bindings.forEach(({ binding }, index) => binding.mark(`${path}.${index}`));
    },
  };
}

function field(schema, rawNode, value, context) {
  const node = resolve(schema, rawNode);
  if (node.properties) return objectForm(schema, node, value, context);
  if (node.type === "array" && resolve(schema, node.items || {}).properties) return listForm(schema, node, value, context);
  const list = context.datalists[`${context.path.split(".")[0]}.${context.key}`];
  return scalar(schema, node, value, { ...context, datalist: list });
}

function setPath(target, path, value) {
  const parts = path.split(".");
  let current = target;
  for (const part of parts.slice(0, -1)) current = current[part] ??= {};
  current[parts.at(-1)] = value;
}

function getPath(source, path) {
  return path.split(".").reduce((current, part) => (current == null ? undefined : current[part]), source);
}

// The form of a settings page: one binding per path of the group; `read()` gives the nested values to send.
export function buildForm(schema, paths, values, { secretsSet = [], hidden = [], datalists = {} } = {}) {
  const context = { secretsSet: new Set(secretsSet), hidden: new Set(hidden), datalists };
  const bindings = paths.map((path) => [path, field(schema, nodeAt(schema, path), getPath(values, path), { ...context, path, key: path.split(".").pop() })]);
  return {
    elements: bindings.map(([, binding]) => binding.element),
    read: () => {
      const out = {};
      for (const [path, binding] of bindings) {
        setPath(out, path, binding.read());
        binding.mark(path);
      }
      return out;
    },
  };
}

// Show each error ({loc, msg}) in the slot of the input or fieldset its path names (the nearest one above it).
export function showErrors(container, errors) {
  for (const slot of container.querySelectorAll("[data-error]")) slot.textContent = "";
  for (const wrap of container.querySelectorAll(".invalid")) wrap.classList.remove("invalid");
  const unplaced = [];
  for (const error of errors) {
    let loc = error.loc;
    let target = null;
    while (loc && !(target = container.querySelector(`[data-path="${CSS.escape(loc)}"]`))) loc = loc.split(".").slice(0, -1).join(".");
    if (!target) {
      unplaced.push(error);
      continue;
    }
    const slot = target.querySelector(":scope > [data-error]");
    slot.textContent = slot.textContent ? `${slot.textContent} ${_(error.msg)}` : _(error.msg);
    target.classList.add("invalid");
    target.querySelector("input, select, textarea")?.setAttribute("aria-invalid", "true");
  }
  return unplaced;
}
