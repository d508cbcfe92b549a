// CSV as RFC 4180 writes it (and Python's csv module reads it): fields separated by commas,
// quoted with " when they hold a comma, a quote ("" inside) or a line break; records end
// with CRLF, LF or CR. A byte-order mark at the start is dropped.

export class CsvError extends Error {
  constructor(message, line) {
    super(message);
    this.line = line;
  }
}

/** Every record of `text` as `{line, fields}` (line: where the record starts, from 1). */
export function parseCsv(text) {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const records = [];
  let fields = [];
  let field = "";
  let line = 1;
  let start = 1;
  let quoted = false; // inside a quoted field
  let wasQuoted = false; // the current field began with a quote
  let i = 0;
  const endField = () => {
    fields.push(field);
    field = "";
    wasQuoted = false;
  };
  const endRecord = () => {
    endField();
    // A blank line is no record (Python's DictReader skips it too).
    if (!(fields.length === 1 && fields[0] === "")) records.push({ line: start, fields });
    fields = [];
  };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        if (c === "\n" || (c === "\r" && text[i + 1] !== "\n")) line += 1;
        field += c;
      }
      i += 1;
      continue;
    }
    if (c === '"' && field === "" && !wasQuoted) {
      quoted = wasQuoted = true;
    } else if (c === ",") {
      endField();
    } else if (c === "\r" || c === "\n") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      endRecord();
      line += 1;
      start = line;
    } else {
      field += c; // a stray quote inside an unquoted field is kept, as Python does
    }
    i += 1;
  }
  if (quoted) throw new CsvError(`a quoted field that starts on line ${start} never ends`, start);
  if (field !== "" || fields.length) endRecord();
  return records;
}

/** `{columns, rows: [{line, row}]}`: each record as an object keyed by the header's names
 * (a missing field is undefined, as Python's DictReader leaves it None). */
export function csvObjects(text) {
  const records = parseCsv(text);
  if (!records.length) return { columns: [], rows: [] };
  const columns = records[0].fields;
  const rows = records.slice(1).map(({ line, fields }) => {
    const row = {};
    columns.forEach((name, n) => {
      row[name] = fields[n];
    });
    return { line, row, extra: Math.max(0, fields.length - columns.length) };
  });
  return { columns, rows };
}
