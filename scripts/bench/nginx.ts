/**
 * nginx as the baseline reverse proxy, doing the same work as the gateway: one worker, upstream
 * keep-alive, HTTP/1.1 upstream, a request id, X-Forwarded-For, and a JSON access log to a file.
 */
import { mkdirSync, writeFileSync } from 'node:fs'

export function nginxConfig(dir: string, listenPort: number, backendPort: number): string {
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(`${dir}/${sub}`, { recursive: true })
  const config = `
worker_processes 1;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  log_format gateway escape=json '{"level":"info","time":"$time_iso8601","msg":"Proxied request","method":"$request_method",'
    '"service":"bench","target_url":"http://127.0.0.1:${backendPort}","path":"$uri","status":$status,'
    '"duration_ms":$request_time,"request_id":"$request_id","client_ip":"$remote_addr"}';
  upstream backend {
    server 127.0.0.1:${backendPort};
    keepalive 100;
  }
  server {
    listen 127.0.0.1:${listenPort};
    # Batched like the gateway's log writer (64 KiB or 100 ms, whichever comes first).
    access_log ${dir}/access.log gateway buffer=64k flush=100ms;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      add_header X-Request-Id $request_id;
    }
  }
}
`
  const path = `${dir}/nginx.conf`
  writeFileSync(path, config)
  return path
}
