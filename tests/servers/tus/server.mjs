// The tus reference server on loopback for classbox's upload tests.
//   node server.mjs PORT DIR LOG
// Stores uploads in DIR; appends one JSON line per request to LOG (method, url, content-length, status) so
// tests can count the bytes a client sent. @tus/server has no checksum extension, so integrity is
// end to end: on finish the file's sha256 must equal the `sha256` upload metadata, else the
// upload is removed and the client gets 460 (tus "Checksum Mismatch").
import { createHash } from 'node:crypto';
import { createReadStream, appendFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const [port, directory, logFile] = process.argv.slice(2);
const datastore = new FileStore({ directory });
const sha256 = (file) => new Promise((resolve, reject) => {
  const hash = createHash('sha256');
  createReadStream(file).on('data', (d) => hash.update(d)).on('end', () => resolve(hash.digest('hex'))).on('error', reject);
});
const tus = new Server({
  path: '/files',
  datastore,
  async onUploadFinish(req, upload) {
    const actual = await sha256(path.join(directory, upload.id));
    const expected = upload.metadata?.sha256;
    appendFileSync(logFile, JSON.stringify({ event: 'finish', id: upload.id, sha256: actual, ok: actual === expected }) + '\n');
    if (expected && actual !== expected) {
      await datastore.remove(upload.id);
      throw { status_code: 460, body: 'Checksum Mismatch: the file does not match its sha256 metadata\n' };
    }
    return {};
  },
});
const server = http.createServer((req, res) => {
  const length = Number(req.headers['content-length'] || 0);
  const auth = (req.headers.authorization || '').split(' ')[0];
  res.on('close', () => {
    const line = { method: req.method, url: req.url, length, status: res.statusCode, auth };
    appendFileSync(logFile, JSON.stringify(line) + '\n');
  });
  tus.handle(req, res);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`tus listening on ${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
