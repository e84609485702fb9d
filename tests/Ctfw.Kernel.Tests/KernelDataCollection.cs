namespace Ctfw.Kernel.Tests;

/// <summary>
/// Tests that read or (with CTFW_RECORD=1) write <c>tests/data/kernel</c> share this collection, so
/// xUnit never runs a reader while the recorder is rewriting the files.
/// </summary>
[CollectionDefinition(Name)]
public sealed class KernelDataCollection
{
    public const string Name = "kernel data";
}
