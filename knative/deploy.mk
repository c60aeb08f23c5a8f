# Proteus on Knative: build, push, deploy, undeploy. Included from the main Makefile
# (`-include knative/deploy.mk`); also works alone: make -f knative/deploy.mk deploy ...
#
#   make images  [REGISTRY=...] [TAG=...] [BAKE_MODELS=1]   docker build every image
#   make push     REGISTRY=...  [TAG=...]                   docker push every image
#   make deploy   REGISTRY=...  [TAG=...] [EVENT_SOURCE=runner|redisstreamsource]
#                 [WEAVE_MODE=knative|keda] [POSTGRES=incluster|external]
#   make undeploy [PURGE=1]
#   make knative-features        enable the config-features flags weave/tailor need
#   make models-fetch            fill the model PVCs (in-cluster `make models`)
#   DRY_RUN=1 with any of them prints the commands instead of running them.
#
# Every command is generated as a line of text first, then piped either to bash (run) or
# to cat (DRY_RUN=1). The kn, docker and image-rewriting commands come from
# knative/kn_commands.py, which reads them off the manifests and docker/images.yaml.

SHELL := /bin/bash

REGISTRY ?=
# Pass the same TAG to images, push and deploy (default: the current commit).
ifeq ($(origin TAG),undefined)
TAG := $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
endif
EVENT_SOURCE ?= runner
WEAVE_MODE ?= knative
POSTGRES ?= incluster
BAKE_MODELS ?=
PURGE ?=
DRY_RUN ?=
KUBECTL ?= kubectl
KN ?= kn
ROLLOUT_TIMEOUT ?= 600s

KN_PY ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
KNC = $(KN_PY) knative/kn_commands.py --registry "$(REGISTRY)" --tag "$(TAG)"
KN_NS := proteus
# Clean-up of the option not chosen: its CRD (eventing-redis, KEDA) may not be installed,
# and kubectl then fails even with --ignore-not-found.
CRD_MAY_BE_MISSING := || true

ifeq ($(DRY_RUN),1)
EXEC := cat
else
EXEC := bash -euo pipefail -x
endif
# A recipe generates all its command lines first (nothing runs if that fails), then
# hands them to $(EXEC): $(BEGIN) echo '...'; ... $(END)
BEGIN = set -eo pipefail; cmds="$$( set -e;
END = )"; printf '%s\n' "$$cmds" | $(EXEC)

# What goes where, by option.
ROUTE_CONSUMERS := enqueue weave tailor notify webhooks
ifeq ($(WEAVE_MODE),keda)
SOURCE_CONSUMERS := enqueue tailor notify webhooks
KN_FILTER := --exclude weave
else ifeq ($(WEAVE_MODE),knative)
SOURCE_CONSUMERS := $(ROUTE_CONSUMERS)
KN_FILTER :=
else
$(error WEAVE_MODE must be knative or keda, got '$(WEAVE_MODE)')
endif
ifeq ($(EVENT_SOURCE),runner)
OTHER_SOURCE := redisstreamsource
else ifeq ($(EVENT_SOURCE),redisstreamsource)
OTHER_SOURCE := runner
else
$(error EVENT_SOURCE must be runner or redisstreamsource, got '$(EVENT_SOURCE)')
endif
SOURCE_FILES := $(foreach c,$(SOURCE_CONSUMERS),knative/sources/$(EVENT_SOURCE)/$(c).yaml)
OTHER_SOURCE_FILES := $(foreach c,$(ROUTE_CONSUMERS),knative/sources/$(OTHER_SOURCE)/$(c).yaml)
DATA_FILES := knative/base/redis.yaml $(if $(filter incluster,$(POSTGRES)),knative/base/postgres.yaml)
DATA_SETS := statefulset/redis $(if $(filter incluster,$(POSTGRES)),statefulset/postgres)
DATA_SECRETS := proteus-secrets proteus-redis $(if $(filter incluster,$(POSTGRES)),proteus-postgres)

.PHONY: images push deploy undeploy knative-features models-fetch _need-registry

_need-registry:
	@test -n "$(REGISTRY)" || { echo "set REGISTRY, e.g. make $(MAKECMDGOALS) REGISTRY=registry.example.com/proteus" >&2; exit 1; }

images: ## Build every image (docker/images.yaml); BAKE_MODELS=1 puts models/ inside weave and tailor
	@$(BEGIN) $(KNC) build $(if $(filter 1,$(BAKE_MODELS)),--bake-models) $(END)

push: _need-registry ## Push every image to REGISTRY with TAG
	@$(BEGIN) $(KNC) push $(END)

deploy: _need-registry ## Deploy to the current kubectl context (see knative/README.md)
	@$(BEGIN) \
	  echo '$(KUBECTL) apply -f knative/base/namespace.yaml -f knative/base/configmap.yaml'; \
	  echo '$(KUBECTL) -n $(KN_NS) get secret $(DATA_SECRETS) -o name'; \
	  echo '$(KUBECTL) apply $(foreach f,$(DATA_FILES),-f $(f))'; \
	  echo '$(KUBECTL) -n $(KN_NS) rollout status $(DATA_SETS) --timeout=$(ROLLOUT_TIMEOUT)'; \
	  echo '$(KUBECTL) -n $(KN_NS) delete job proteus-streams-init proteus-migrate --ignore-not-found'; \
	  echo '$(KNC) render knative/base/streams-init-job.yaml knative/base/migrate-job.yaml | $(KUBECTL) apply -f -'; \
	  echo '$(KUBECTL) -n $(KN_NS) wait --for=condition=complete job/proteus-streams-init job/proteus-migrate --timeout=$(ROLLOUT_TIMEOUT)'; \
	  echo '$(KNC) render knative/base/retention-cronjob.yaml | $(KUBECTL) apply -f -'; \
	  echo '$(KUBECTL) apply -f knative/models/pvcs.yaml'; \
	  echo '$(KNC) render knative/base/reconcile-cronjob.yaml | $(KUBECTL) apply -f -'; \
	  $(if $(filter keda,$(WEAVE_MODE)),echo '$(KUBECTL) -n $(KN_NS) delete ksvc weave --ignore-not-found';) \
	  $(KNC) kn $(KN_FILTER) | sed 's|^kn |$(KN) |'; \
	  echo '$(KUBECTL) apply -f knative/ingress/gateway.yaml'; \
	  echo '$(KUBECTL) apply -f knative/monitoring/podmonitors.yaml -f knative/monitoring/runner-podmonitor.yaml -f knative/monitoring/alerts.yaml $(CRD_MAY_BE_MISSING)'; \
	  echo '$(KUBECTL) delete --ignore-not-found $(foreach f,$(OTHER_SOURCE_FILES),-f $(f)) $(CRD_MAY_BE_MISSING)'; \
	  $(if $(filter knative,$(WEAVE_MODE)),echo '$(KUBECTL) delete --ignore-not-found -f knative/keda/weave-scaledobject.yaml -f knative/keda/weave-worker.yaml $(CRD_MAY_BE_MISSING)';) \
	  $(if $(filter keda,$(WEAVE_MODE)),echo '$(KUBECTL) delete --ignore-not-found -f knative/sources/$(EVENT_SOURCE)/weave.yaml $(CRD_MAY_BE_MISSING)';) \
	  echo '$(KNC) render $(SOURCE_FILES) | $(KUBECTL) apply -f -'; \
	  $(if $(filter keda,$(WEAVE_MODE)),echo '$(KNC) render knative/keda/weave-worker.yaml knative/keda/weave-scaledobject.yaml | $(KUBECTL) apply -f -';) \
	$(END)

undeploy: ## Remove Proteus but keep data (PVCs, Secrets, namespace); PURGE=1 deletes the namespace too
	@$(BEGIN) \
	  echo '$(KUBECTL) delete --ignore-not-found -f knative/keda/weave-scaledobject.yaml -f knative/keda/weave-worker.yaml $(CRD_MAY_BE_MISSING)'; \
	  echo '$(KUBECTL) delete --ignore-not-found $(foreach c,$(ROUTE_CONSUMERS),-f knative/sources/redisstreamsource/$(c).yaml) $(CRD_MAY_BE_MISSING)'; \
	  echo '$(KUBECTL) delete --ignore-not-found $(foreach c,$(ROUTE_CONSUMERS),-f knative/sources/runner/$(c).yaml)'; \
	  echo '$(KUBECTL) delete --ignore-not-found -f knative/ingress/gateway.yaml'; \
	  echo '$(KUBECTL) delete --ignore-not-found -f knative/services/'; \
	  echo '$(KUBECTL) -n $(KN_NS) delete job proteus-streams-init proteus-migrate weave-models-fetch tailor-models-fetch --ignore-not-found'; \
	  echo '$(KUBECTL) delete --ignore-not-found -f knative/base/redis.yaml -f knative/base/postgres.yaml'; \
	  $(if $(filter 1,$(PURGE)),echo '$(KUBECTL) delete --ignore-not-found -f knative/base/namespace.yaml';) \
	$(END)

knative-features: ## Enable the Knative Serving feature flags weave and tailor need (config-features)
	@$(BEGIN) \
	  echo '$(KUBECTL) -n knative-serving patch configmap/config-features --type merge -p '"'"'{"data":{"kubernetes.podspec-nodeselector":"enabled","kubernetes.podspec-tolerations":"enabled","kubernetes.podspec-persistent-volume-claim":"enabled"}}'"'"''; \
	$(END)

models-fetch: _need-registry ## Download the weights into the model PVCs (needs the images pushed)
	@$(BEGIN) \
	  echo '$(KUBECTL) apply -f knative/base/namespace.yaml -f knative/base/configmap.yaml -f knative/models/pvcs.yaml'; \
	  echo '$(KUBECTL) -n $(KN_NS) delete job weave-models-fetch tailor-models-fetch --ignore-not-found'; \
	  echo '$(KNC) render knative/models/fetch-job.yaml | $(KUBECTL) apply -f -'; \
	  echo '$(KUBECTL) -n $(KN_NS) wait --for=condition=complete job/weave-models-fetch job/tailor-models-fetch --timeout=3600s'; \
	$(END)
