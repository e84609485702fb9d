namespace Ctfw.Lab.Tests;

/// <summary>Tool outputs captured from real runs in lab namespaces (see Data/).</summary>
internal static class TestData
{
    public static string Read(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", name));

    /// <summary>Every proper prefix of <paramref name="text"/>, shortest first.</summary>
    public static IEnumerable<string> Prefixes(string text)
    {
        for (int i = 0; i < text.Length; i++)
            yield return text[..i];
    }
}
