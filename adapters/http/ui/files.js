// The files panel: download a file or directory out of a running lease
// (GET /api/containers/{id}/files, a tar archive) and upload files into one
// (PUT …/files?path=DIR&name=FILE, one file's raw bytes per request).
// Both are fetch calls signed in as the page is (api.js `authorize`: the
// bearer token in the Authorization header, or the session cookie with the
// CSRF header): a plain link could not carry a token, and no token ever
// goes into a URL.

import { ApiError, authorize, shortId } from './api.js';

/** The API's error JSON of a failed response, as an ApiError. */
async function failure(response) {
  let detail = {};
  try {
    detail = (await response.json())?.error ?? {};
  } catch {
    detail = {};
  }
  return new ApiError(
    response.status,
    detail.code ?? `http_${response.status}`,
    detail.message ?? `${response.status} ${response.statusText || 'error'}`,
    detail.field ?? null,
  );
}


/** The files panel; `elements` are its DOM nodes. */
export class FilesPanel {
  constructor(elements) {
    this.el = elements;
    this.lease = null;
    this.el.close.addEventListener('click', () => this.close());
    this.el.downloadForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.download();
    });
    this.el.uploadForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.upload();
    });
  }

  /** The id of the lease shown, if any. */
  get leaseId() {
    return this.lease?.id ?? null;
  }

  /** Opens the panel on `lease`. */
  open(lease) {
    this.lease = lease;
    this.el.title.textContent = `Files — ${shortId(lease.id)} (${lease.imageType})`;
    this.setState('');
    this.el.panel.hidden = false;
    this.el.panel.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    this.el.downloadPath.focus();
  }

  close() {
    this.lease = null;
    this.el.panel.hidden = true;
  }

  setState(text, kind = 'info') {
    this.el.state.textContent = text;
    this.el.state.dataset.kind = kind;
  }

  url(params) {
    const query = new URLSearchParams(params).toString();
    return `/api/containers/${encodeURIComponent(this.lease.id)}/files?${query}`;
  }

  /** Downloads the path in the field as a .tar the browser saves. */
  async download() {
    if (!this.lease) return;
    const path = this.el.downloadPath.value.trim();
    this.setState(`Downloading ${path}…`);
    try {
      const response = await fetch(this.url({ path }), {
        ...authorize('GET'),
        cache: 'no-store',
      });
      if (!response.ok) throw await failure(response);
      const blob = await response.blob();
      const disposition = response.headers.get('content-disposition') ?? '';
      const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? 'download.tar';
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      this.setState(`Downloaded ${path} as ${name} (${blob.size} bytes).`, 'ok');
    } catch (error) {
      this.setState(`Download failed: ${error.message}`, 'error');
    }
  }

  /** Uploads the chosen files, one request each, into the directory in the field. */
  async upload() {
    if (!this.lease) return;
    const dir = this.el.uploadPath.value.trim();
    const files = [...this.el.uploadFiles.files];
    if (files.length === 0) {
      this.setState('Choose one or more files first.', 'error');
      return;
    }
    let done = 0;
    for (const file of files) {
      this.setState(`Uploading ${file.name} (${done + 1} of ${files.length})…`);
      try {
        const response = await fetch(this.url({ path: dir, name: file.name }), {
          method: 'PUT',
          ...authorize('PUT', { 'Content-Type': 'application/octet-stream' }),
          body: file,
          cache: 'no-store',
        });
        if (!response.ok) throw await failure(response);
        done += 1;
      } catch (error) {
        this.setState(`Upload of ${file.name} failed: ${error.message}`, 'error');
        return;
      }
    }
    this.el.uploadFiles.value = '';
    this.setState(`Uploaded ${done} file${done === 1 ? '' : 's'} into ${dir}.`, 'ok');
  }
}
