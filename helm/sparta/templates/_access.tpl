{{/* Access control: environment, volumes and mounts (values: access.*). */}}
{{- define "sparta.accessEnv" -}}
{{- with .Values.access.allow }}
- name: SPARTA_ALLOW
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.access.deny }}
- name: SPARTA_DENY
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.access.trustedProxies }}
- name: SPARTA_TRUSTED_PROXIES
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.access.moduleRules }}
- name: SPARTA_MODULE_RULE
  value: {{ join "\n" . | quote }}
{{- end }}
{{- if .Values.access.auth.existingSecret }}
{{- if .Values.access.auth.htpasswdKey }}
- name: SPARTA_HTPASSWD
  value: {{ printf "/etc/sparta-auth/%s" .Values.access.auth.htpasswdKey | quote }}
{{- end }}
{{- if .Values.access.auth.tokensKey }}
- name: SPARTA_AUTH_TOKENS
  value: {{ printf "/etc/sparta-auth/%s" .Values.access.auth.tokensKey | quote }}
{{- end }}
{{- end }}
- name: SPARTA_AUDIT_LOG
  value: {{ .Values.access.auditLog | quote }}
{{- if .Values.access.tls.secretName }}
- name: SPARTA_TLS_CERT
  value: /etc/sparta-tls/tls.crt
- name: SPARTA_TLS_KEY
  value: /etc/sparta-tls/tls.key
{{- end }}
{{- end }}

{{- define "sparta.accessMounts" -}}
{{- if .Values.access.auth.existingSecret }}
- name: auth
  mountPath: /etc/sparta-auth
  readOnly: true
{{- end }}
{{- if .Values.access.tls.secretName }}
- name: tls
  mountPath: /etc/sparta-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "sparta.accessVolumes" -}}
{{- if .Values.access.auth.existingSecret }}
- name: auth
  secret:
    secretName: {{ .Values.access.auth.existingSecret }}
{{- end }}
{{- if .Values.access.tls.secretName }}
- name: tls
  secret:
    secretName: {{ .Values.access.tls.secretName }}
{{- end }}
{{- end }}

{{/* HTTPS probes when Sparta terminates TLS itself. */}}
{{- define "sparta.probeScheme" -}}
{{- if .Values.access.tls.secretName }}
scheme: HTTPS
{{- end }}
{{- end }}
