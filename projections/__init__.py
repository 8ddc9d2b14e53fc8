"""metaledger's views: stacks, runs and artifacts projected from the event log.

    async with open_store() as store, open_views(store) as views:
        for run in await views.query.runs(limit=10):  # caught up to the head first
            print(run.run_name, run.status)

Queries are fresh by default: each first brings the views up to the log's head
(``open_views(store, fresh=False)`` reads them as ``catch_up``/``follow`` left them).

Projections are disposable: delete the views file and they come back from the
log. Each keeps a checkpoint in the same transaction as its rows (exactly
once), is rebuilt blue/green when its version changes, and can be replayed
into a scratch store to answer "as of" a past position or time.
"""

from .artifacts import ArtifactsProjection
from .definition import EventContext, Handler, Op, Projection, Table, to_json
from .errors import (
    AmbiguousReferenceError,
    ProjectionError,
    ProjectionFailedError,
    QueryError,
    RebuildConflictError,
    UnknownProjectionError,
    ViewNotFoundError,
    ViewsBusyError,
    ViewsCorruptError,
    ViewsFullError,
    ViewsReadOnlyError,
    ViewsStoreError,
    ViewsTimeoutError,
)
from .queries import (
    ArtifactView,
    ComponentRef,
    ComponentView,
    ConsumerView,
    LineageEdge,
    LineageGraph,
    LineageNode,
    PipelineView,
    Queries,
    RunView,
    StackView,
    StepView,
    Summary,
)
from .runner import (
    DEFAULT_PROJECTIONS,
    ProgressCallback,
    ProjectionFault,
    ProjectionRunner,
    ProjectionStatus,
    default_projections,
)
from .runs import STEP_STATUSES, RunsProjection
from .stacks import StacksProjection
from .views import Views, open_views, views_as_of
from .views_store import VIEWS_FILE, SQLiteViewsStore, ViewsStore

__all__ = [
    "DEFAULT_PROJECTIONS",
    "STEP_STATUSES",
    "VIEWS_FILE",
    "AmbiguousReferenceError",
    "ArtifactView",
    "ArtifactsProjection",
    "ComponentRef",
    "ComponentView",
    "ConsumerView",
    "EventContext",
    "Handler",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "Op",
    "PipelineView",
    "ProgressCallback",
    "Projection",
    "ProjectionError",
    "ProjectionFailedError",
    "ProjectionFault",
    "ProjectionRunner",
    "ProjectionStatus",
    "Queries",
    "QueryError",
    "RebuildConflictError",
    "RunView",
    "RunsProjection",
    "SQLiteViewsStore",
    "StackView",
    "StacksProjection",
    "StepView",
    "Summary",
    "Table",
    "UnknownProjectionError",
    "ViewNotFoundError",
    "Views",
    "ViewsBusyError",
    "ViewsCorruptError",
    "ViewsFullError",
    "ViewsReadOnlyError",
    "ViewsStore",
    "ViewsStoreError",
    "ViewsTimeoutError",
    "default_projections",
    "open_views",
    "to_json",
    "views_as_of",
]
